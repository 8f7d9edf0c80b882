-- Console sessions of the operator (signed in with the bootstrap token, which has no user row).
-- Like users' sessions, only the SHA-256 of the session token is kept; `token_fp` (the SHA-256 of
-- the bootstrap token's SHA-256) ties a session to the token it was made with, so that a new
-- bootstrap token ends every session of the old one.
CREATE TABLE operator_sessions (
    seq         INTEGER PRIMARY KEY,
    id          TEXT NOT NULL UNIQUE,
    hash        BLOB NOT NULL UNIQUE,
    token_fp    BLOB NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
);
