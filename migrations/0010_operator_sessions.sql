-- Console sessions of the operator (signed in with the bootstrap token, which has no user row).
-- Like users' sessions, only the SHA-256 of the session token is kept.
CREATE TABLE operator_sessions (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    hash        BLOB NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
