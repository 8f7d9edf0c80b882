-- AI calls in the rollups: the model alias joins the key; input and output tokens and the cost
-- (nano-USD) are summed. Rows of calls that were not AI calls have model '' and zeros.
CREATE TABLE rollups_v2 (
    res INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    service TEXT NOT NULL,
    route TEXT NOT NULL,
    app TEXT NOT NULL,
    model TEXT NOT NULL,
    class INTEGER NOT NULL,
    code TEXT NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_nanos INTEGER NOT NULL,
    latency BLOB NOT NULL,
    PRIMARY KEY (res, bucket, tenant, service, route, app, model, class, code)
) WITHOUT ROWID;
INSERT INTO rollups_v2
    SELECT res, bucket, tenant, service, route, app, '', class, code, count, errors, bytes_in,
           bytes_out, 0, 0, 0, latency
    FROM rollups;
DROP TABLE rollups;
ALTER TABLE rollups_v2 RENAME TO rollups;
CREATE INDEX rollups_by_time ON rollups (bucket);
CREATE INDEX rollups_by_tenant ON rollups (tenant, bucket);
