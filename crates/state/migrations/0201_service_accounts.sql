-- Service accounts shared by every replica (tracegate-state::service_accounts): the same events
-- the embedded log holds, one row each. Writers serialise on an advisory lock, so `seq` order
-- is commit order and a reader that has seen `seq` n has seen everything before it.
CREATE TABLE service_account_events (
    seq   bigserial PRIMARY KEY,
    event jsonb NOT NULL
);
