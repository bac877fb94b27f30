-- The metadata index search runs on (tracegate_core::meta): one row per trace, upserted on every
-- write through any replica and rebuildable from the bucket (`tracegate index rebuild`).
-- Start times are nanoseconds since the Unix epoch, as precise as the in-memory index, so row
-- scope (`max_age`) and `since`/`until` compare exactly as the core does.
CREATE TABLE trace_index (
    trace_id    TEXT COLLATE "C" PRIMARY KEY,
    tenant      TEXT,
    project     TEXT,
    agent       TEXT,
    "user"      TEXT,
    started_ns  BIGINT,
    indexed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Row scope is usually by tenant (sometimes tenant and project, or user); results are newest
-- first, then by id: these serve the scoped, ordered, limited query without a sort of the scope.
CREATE INDEX trace_index_tenant_time ON trace_index (tenant, started_ns DESC NULLS LAST, trace_id);
CREATE INDEX trace_index_tenant_project_time ON trace_index (tenant, project, started_ns DESC NULLS LAST, trace_id);
CREATE INDEX trace_index_user_time ON trace_index ("user", started_ns DESC NULLS LAST, trace_id);
CREATE INDEX trace_index_time ON trace_index (started_ns DESC NULLS LAST, trace_id);

-- Where an interrupted `tracegate index rebuild` resumes: the last key of the bucket listing
-- whose batch was committed.
CREATE TABLE trace_index_rebuild (
    id        SMALLINT PRIMARY KEY CHECK (id = 1),
    last_key  TEXT COLLATE "C" NOT NULL,
    indexed   BIGINT NOT NULL,
    updated   TIMESTAMPTZ NOT NULL DEFAULT now()
);
