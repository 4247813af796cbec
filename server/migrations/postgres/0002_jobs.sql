-- Jobs clients may come back to: a request with an Idempotency-Key is one row, found again by
-- any bridge that gets the same key.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    -- The client's key, scoped to the API key that sent it (a hash of both).
    idempotency_key TEXT NOT NULL UNIQUE,
    -- What was asked (a hash of the request as the client wrote it): the same key with other
    -- content is refused.
    fingerprint TEXT NOT NULL,
    -- `running` or `succeeded`; a failed job's row is removed, so a retry runs it again.
    state TEXT NOT NULL,
    -- The bridge running it, and until when its claim holds unless renewed.
    owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    -- The images' seeds, as a JSON array of strings; their files are jobs/<id>/<index>.
    result TEXT
);

CREATE INDEX jobs_created ON jobs (created_at);
