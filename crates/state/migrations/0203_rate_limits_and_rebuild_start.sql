-- Per-principal rate limits shared by every replica (`[limits]` with `[state]`): one GCRA cell
-- per (limit, issuer, subject). `tat_us` is the cell's theoretical arrival time in microseconds
-- since the Unix epoch on the database's clock, so replicas with skewed clocks still agree.
-- A check is one `INSERT ... ON CONFLICT DO UPDATE ... RETURNING` (crates/server/src/limits.rs).
-- UNLOGGED: a check writes no WAL, so its commit does not wait for a WAL flush (measured on this
-- machine: p50 0.29 ms instead of 1.7 ms, docs/benchmarks.md). The cost: after a PostgreSQL crash
-- or a failover to a standby the table is empty, so every budget starts full again. Counters are
-- not evidence (the audit trail is); losing them forgets recent spending, nothing else.
CREATE UNLOGGED TABLE rate_limits (
    name     TEXT COLLATE "C" NOT NULL,
    issuer   TEXT COLLATE "C" NOT NULL,
    subject  TEXT COLLATE "C" NOT NULL,
    tat_us   BIGINT NOT NULL,
    -- the outcome and database time of the last check, returned by the same statement
    allowed  BOOLEAN NOT NULL,
    seen_us  BIGINT NOT NULL,
    PRIMARY KEY (name, issuer, subject)
);
-- Idle cells (whose bucket is full again) are deleted by the sweep.
CREATE INDEX rate_limits_tat ON rate_limits (tat_us);

-- Where an interrupted `tracegate index rebuild` started: rows indexed by a gateway write after
-- this are newer than anything the rebuild read, and the rebuild leaves them alone.
ALTER TABLE trace_index_rebuild ADD COLUMN started TIMESTAMPTZ NOT NULL DEFAULT now();
