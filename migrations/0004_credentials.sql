-- An app's credentials besides API keys: JWT (an issuer with its verification keys or JWKS URL),
-- later HMAC and basic. `lookup` is what a request names the credential by (a JWT's `iss`).
-- `config` is JSON; any secret in it (an HS256 key) is sealed with the store's key (AES-256-GCM),
-- never stored in the clear.
CREATE TABLE credentials (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    app_id      TEXT NOT NULL REFERENCES apps(id),
    kind        TEXT NOT NULL CHECK (kind IN ('jwt', 'hmac', 'basic')),
    lookup      TEXT NOT NULL,
    config      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
CREATE INDEX credentials_app ON credentials(app_id);
-- One live credential per kind and lookup name (a JWT issuer belongs to one app).
CREATE UNIQUE INDEX credentials_live ON credentials(kind, lookup) WHERE revoked_at IS NULL;
