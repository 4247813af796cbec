-- An async job's request as accepted (JSON, without credentials; its files are
-- jobs/<id>/input/<n>): a bridge taking the job over checks and runs it again.
ALTER TABLE jobs ADD COLUMN request TEXT;
