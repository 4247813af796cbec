-- An OpenAI SDK's attempts without an Idempotency-Key: a retry (x-stainless-retry-count above
-- 0) finds its first attempt's job by this hash of the credentials and the request.
ALTER TABLE jobs ADD COLUMN retry_key TEXT;
CREATE INDEX jobs_retry ON jobs (retry_key, created_at);
