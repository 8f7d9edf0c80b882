-- Users of a tenant with a role, and their tokens: console sessions (from a password login) and
-- personal API tokens with scopes (for scripts). Passwords are argon2id PHC strings; tokens are
-- stored as the SHA-256 of the token (256 random bits) with a visible prefix.
CREATE TABLE users (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    email       TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role        TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    disabled_at INTEGER
);
CREATE INDEX users_tenant ON users(tenant_id);

CREATE TABLE tokens (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    user_id     TEXT NOT NULL REFERENCES users(id),
    kind        TEXT NOT NULL CHECK (kind IN ('session', 'personal')),
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    name        TEXT,
    scopes      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);
