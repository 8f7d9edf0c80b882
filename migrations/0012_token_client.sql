-- Where a user's console session or personal token was made from (client address and
-- User-Agent), shown in `GET /api/v1/tokens` so that a person can tell their sessions apart.
ALTER TABLE tokens ADD COLUMN client TEXT;
ALTER TABLE tokens ADD COLUMN user_agent TEXT;
