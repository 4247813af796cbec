-- Async jobs (answered 202, polled at /v1/jobs/<id>) and their webhooks.
-- Async jobs keep their failures (state `failed`, `error` the envelope's body as JSON) and
-- may be `cancelled`; their answer is stored whole, as jobs/<id>/response.json.
ALTER TABLE jobs ADD COLUMN is_async BOOLEAN NOT NULL DEFAULT FALSE;
-- A hash of the credentials that created the job: only they may read or cancel it.
ALTER TABLE jobs ADD COLUMN scope TEXT;
ALTER TABLE jobs ADD COLUMN error TEXT;
-- Where the outcome is delivered, and how that stands: `pending`, `delivered` or `failed`.
ALTER TABLE jobs ADD COLUMN webhook_url TEXT;
ALTER TABLE jobs ADD COLUMN webhook_state TEXT;
ALTER TABLE jobs ADD COLUMN webhook_attempts INTEGER NOT NULL DEFAULT 0;
-- No attempt before this time (backoff), and none by another bridge while one holds it.
ALTER TABLE jobs ADD COLUMN webhook_next_at BIGINT;
ALTER TABLE jobs ADD COLUMN webhook_lease_until BIGINT NOT NULL DEFAULT 0;
