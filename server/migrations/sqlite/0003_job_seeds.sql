-- The seeds first chosen for a job, as a JSON array of strings: a bridge taking the job over
-- makes the same images.
ALTER TABLE jobs ADD COLUMN seeds TEXT;
