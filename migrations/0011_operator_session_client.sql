-- Where a console session or token was made from (client address and User-Agent), so that a
-- person can tell their sessions apart (`GET /api/v1/sessions` for the operator,
-- `GET /api/v1/tokens` for a user) and end one that is not theirs.
ALTER TABLE operator_sessions ADD COLUMN client TEXT;
ALTER TABLE operator_sessions ADD COLUMN user_agent TEXT;
ALTER TABLE tokens ADD COLUMN client TEXT;
ALTER TABLE tokens ADD COLUMN user_agent TEXT;
