-- Management plane, first schema: tenants, services, apps, API keys, subscriptions, audit log.
--
-- Portable on purpose (SQLite now, Postgres later): TEXT ids made by the control plane (prefixed
-- ULIDs, so they sort by creation time and page by cursor), INTEGER surrogate keys only where the
-- data plane indexes by number, times as INTEGER unix milliseconds, documents as JSON text,
-- states as TEXT checked against their set. Every mutable row has a `version` for ETag/If-Match.

CREATE TABLE tenants (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);

CREATE TABLE services (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    visibility  TEXT NOT NULL CHECK (visibility IN ('private', 'public')),
    approval    TEXT NOT NULL CHECK (approval IN ('auto', 'manual')),
    state       TEXT NOT NULL CHECK (state IN ('draft', 'published', 'deprecated', 'retired')),
    -- The validated input, as given: routes, upstream and accepted credential kinds (JSON).
    spec        TEXT NOT NULL,
    openapi     TEXT,
    sunset_at   INTEGER,
    deprecation_link TEXT,
    deprecated_at INTEGER,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, name)
);

CREATE TABLE apps (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1,
    UNIQUE (tenant_id, name)
);

-- An API key is stored as the SHA-256 of the whole key (keys carry 256 random bits, so a slow
-- password hash buys nothing and would cost every request) plus its visible prefix.
CREATE TABLE api_keys (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    prefix      TEXT NOT NULL,
    hash        BLOB NOT NULL UNIQUE,
    name        TEXT,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
CREATE INDEX api_keys_app ON api_keys(app_id);

CREATE TABLE subscriptions (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    service_id  TEXT NOT NULL REFERENCES services(id),
    state       TEXT NOT NULL CHECK (state IN ('pending', 'approved', 'rejected', 'revoked', 'cancelled')),
    reason      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    version     INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX subscriptions_app ON subscriptions(app_id);
CREATE INDEX subscriptions_service ON subscriptions(service_id);
-- At most one live (pending or approved) subscription per app and service.
CREATE UNIQUE INDEX subscriptions_live ON subscriptions(app_id, service_id)
    WHERE state IN ('pending', 'approved');

-- Every change: who, what, when, and the object before and after (never a secret).
CREATE TABLE audit (
    seq         INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_kind TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    tenant_id   TEXT,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_object ON audit(object_kind, object_id);
CREATE INDEX audit_tenant ON audit(tenant_id, seq);
