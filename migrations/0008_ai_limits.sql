-- AI limits of apps and tenants (JSON: requests and tokens per minute, token and cost budgets
-- per day and month; NULL: none).
ALTER TABLE apps ADD COLUMN ai_limits TEXT;
ALTER TABLE tenants ADD COLUMN ai_limits TEXT;
