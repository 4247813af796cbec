-- The gallery: one row per stored image.
CREATE TABLE gallery_images (
    id TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL,
    prompt TEXT NOT NULL,
    negative_prompt TEXT,
    model TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    -- Seeds reach 2^64, past a signed BIGINT.
    seed TEXT NOT NULL,
    steps INTEGER,
    cfg DOUBLE PRECISION,
    duration_ms BIGINT NOT NULL,
    file TEXT NOT NULL,
    thumb TEXT NOT NULL,
    bytes BIGINT NOT NULL
);

CREATE INDEX gallery_images_newest ON gallery_images (created_at DESC, id DESC);
CREATE INDEX gallery_images_model ON gallery_images (model);
