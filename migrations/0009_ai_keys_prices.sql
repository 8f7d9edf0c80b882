-- Model providers' keys added through the admin API, sealed with the store key (AES-256-GCM):
-- the store file alone does not give them away. `hint` is the key's last four characters.
CREATE TABLE ai_keys (
    id TEXT PRIMARY KEY,
    provider TEXT NOT NULL,
    label TEXT NOT NULL,
    hint TEXT NOT NULL,
    sealed TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX ai_keys_by_provider ON ai_keys (provider, created_at);
-- Model prices set through the admin API (micro-USD per million tokens); they override the
-- config file's [ai.prices].
CREATE TABLE ai_prices (
    model TEXT PRIMARY KEY,
    input INTEGER NOT NULL,
    output INTEGER NOT NULL,
    cached_input INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
