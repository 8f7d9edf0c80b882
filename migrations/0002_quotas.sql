-- Quotas: requests per second / minute / day for each app calling a service. A service's quota is
-- the default of its subscriptions; a subscription's own (set when it is approved) wins. JSON:
-- {"per_second": N, "per_minute": N, "per_day": N}, each optional.
ALTER TABLE services ADD COLUMN quota TEXT;
ALTER TABLE subscriptions ADD COLUMN quota TEXT;
