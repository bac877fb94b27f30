-- Identity state shared by every replica (tracegate-state::{saml, sessions}). Times are
-- nanoseconds since the Unix epoch, as in 0200. Keys are SHA-256 digests: a copy of these
-- tables hands out no live session, sign-in or request id.

-- SAML assertion ids already redeemed (issuer and assertion id, hashed), until they expire:
-- a response is accepted once across all replicas.
CREATE TABLE saml_used_assertions (
    key            bytea PRIMARY KEY,
    expires_at_ns  bigint NOT NULL
);
CREATE INDEX saml_used_assertions_by_expiry ON saml_used_assertions (expires_at_ns);

-- SAML AuthnRequests issued and not yet answered; taken once by whichever replica gets the response.
CREATE TABLE saml_pending_requests (
    id_hash        bytea PRIMARY KEY,
    expires_at_ns  bigint NOT NULL,
    -- SHA-256 of the browser-binding cookie, for a sign-in that ends in a browser session.
    binding        bytea
);
CREATE INDEX saml_pending_requests_by_expiry ON saml_pending_requests (expires_at_ns);

-- OIDC browser sign-ins started and not yet called back (keyed by SHA-256 of `state`).
CREATE TABLE oidc_pending_sign_ins (
    state_hash     bytea PRIMARY KEY,
    nonce          text NOT NULL,
    verifier       text NOT NULL,
    binding        bytea NOT NULL,
    expires_at_ns  bigint NOT NULL
);
CREATE INDEX oidc_pending_sign_ins_by_expiry ON oidc_pending_sign_ins (expires_at_ns);

-- Browser sessions, keyed by SHA-256 of the session id (the id itself is only in the cookie).
CREATE TABLE browser_sessions (
    key            bytea PRIMARY KEY,
    principal      jsonb NOT NULL,
    csrf_token     text NOT NULL,
    created_at_ns  bigint NOT NULL,
    last_seen_ns   bigint NOT NULL,
    expires_at_ns  bigint NOT NULL
);
CREATE INDEX browser_sessions_by_expiry ON browser_sessions (expires_at_ns);
