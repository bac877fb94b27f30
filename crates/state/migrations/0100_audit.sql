-- The one audit trail of every replica (versions 0100-0199 belong to the audit trail and the
-- metadata index). Records keep the exact canonical line that was hashed, so `verify` re-hashes
-- what is stored; the other columns are copies of its fields for the `GET /v1/audit` filters.

CREATE TABLE audit_records (
    seq         BIGINT      PRIMARY KEY CHECK (seq >= 1),
    prev_hash   TEXT        NOT NULL,
    hash        TEXT        NOT NULL UNIQUE,
    -- the record's own `time` field (what it says, not when it was inserted)
    time        TIMESTAMPTZ NOT NULL,
    kind        TEXT        NOT NULL,
    request_id  TEXT        NOT NULL,
    subject     TEXT,
    decision    TEXT,
    trace_ids   TEXT[]      NOT NULL DEFAULT '{}',
    -- the canonical JSON of the whole record, `hash` included, exactly as hashed and exported
    line        TEXT        NOT NULL
);
CREATE INDEX audit_records_time ON audit_records (time);
CREATE INDEX audit_records_subject ON audit_records (subject, seq);
CREATE INDEX audit_records_request_id ON audit_records (request_id);
CREATE INDEX audit_records_trace_ids ON audit_records USING GIN (trace_ids);

-- The chain head: one row, locked (`SELECT ... FOR UPDATE`) by the transaction that appends, so
-- appends from every replica are serialised into one chain without forks.
CREATE TABLE audit_head (
    id    SMALLINT PRIMARY KEY CHECK (id = 1),
    seq   BIGINT   NOT NULL,
    hash  TEXT     NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

-- Signed checkpoints and prune anchors, each the JSON line the file log would write.
CREATE TABLE audit_checkpoints (
    id         BIGSERIAL   PRIMARY KEY,
    seq        BIGINT      NOT NULL,
    key_id     TEXT        NOT NULL,
    line       TEXT        NOT NULL,
    signed_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX audit_checkpoints_seq ON audit_checkpoints (seq);

-- Every policy version served, content-addressed, so replay works from any replica.
CREATE TABLE audit_policies (
    version    TEXT        PRIMARY KEY,
    text       TEXT        NOT NULL,
    stored_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
