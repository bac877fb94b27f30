-- Access requests shared by every replica (tracegate-state::approvals).
--
-- `body` is the request as the pure state machine (tracegate_core::approval) left it, as JSON;
-- the other columns are copies of it kept only to find rows. Times are nanoseconds since the
-- Unix epoch, so deadlines compare exactly as the state machine compares them.
CREATE TABLE access_requests (
    id                text PRIMARY KEY,
    fingerprint       text NOT NULL,
    requester_issuer  text NOT NULL,
    requester_subject text NOT NULL,
    status            text NOT NULL,
    created_at_ns     bigint NOT NULL,
    -- When time alone closes the request (its pending or grant deadline); NULL once closed.
    due_at_ns         bigint,
    body              jsonb NOT NULL
);
CREATE INDEX access_requests_by_fingerprint ON access_requests (fingerprint);
CREATE INDEX access_requests_by_requester ON access_requests (requester_issuer, requester_subject);
CREATE INDEX access_requests_by_due ON access_requests (due_at_ns) WHERE due_at_ns IS NOT NULL;

-- Every change, in commit order per request: the history the audit trail also holds.
CREATE TABLE access_request_events (
    seq        bigserial PRIMARY KEY,
    request_id text NOT NULL REFERENCES access_requests (id),
    at_ns      bigint NOT NULL,
    event      jsonb NOT NULL
);
CREATE INDEX access_request_events_by_request ON access_request_events (request_id, seq);
