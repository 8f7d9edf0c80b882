-- Call rollups for analytics: per period (res seconds long, starting at bucket, unix seconds) and
-- (tenant, service, route, app, status class, error code): counts, bytes, and the latency
-- histogram (hdrhistogram V2 serialization, microseconds) so percentiles over any range come from
-- merged counts. Minutes are merged into hours, hours into days, as they age.
CREATE TABLE rollups (
    res INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    tenant TEXT NOT NULL,
    service TEXT NOT NULL,
    route TEXT NOT NULL,
    app TEXT NOT NULL,
    class INTEGER NOT NULL,
    code TEXT NOT NULL,
    count INTEGER NOT NULL,
    errors INTEGER NOT NULL,
    bytes_in INTEGER NOT NULL,
    bytes_out INTEGER NOT NULL,
    latency BLOB NOT NULL,
    PRIMARY KEY (res, bucket, tenant, service, route, app, class, code)
) WITHOUT ROWID;
CREATE INDEX rollups_by_time ON rollups (bucket);
CREATE INDEX rollups_by_tenant ON rollups (tenant, bucket);
