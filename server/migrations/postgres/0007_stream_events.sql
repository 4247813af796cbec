-- The events of a streamed job with an Idempotency-Key (or an SDK's attempt), in order, so a
-- retry of the stream on any bridge replays what was sent so far and follows the rest. A row
-- with no name and empty data marks that the stream began (the job was queued) before any
-- event was due. Rows outlive a failed job's row for a while, so a follower still reads the
-- error event that ended it.
CREATE TABLE job_events (
    job_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    name TEXT,
    data TEXT NOT NULL,
    -- The image a `completed` event carries: a bridge taking the job over sends it once.
    image_index BIGINT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_id, seq)
);

CREATE INDEX job_events_created ON job_events (created_at);
