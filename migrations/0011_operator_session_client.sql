-- Where an operator session was signed in from (client address and User-Agent), so that the
-- operator can tell sessions apart in `GET /api/v1/sessions` and end one that is not theirs.
ALTER TABLE operator_sessions ADD COLUMN client TEXT;
ALTER TABLE operator_sessions ADD COLUMN user_agent TEXT;
