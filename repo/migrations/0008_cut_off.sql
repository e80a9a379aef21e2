-- A file that ended before its picture did (a JPEG cut off in a copy, say):
-- its thumbnails show what there was, grey below, and pages tell its owner to
-- upload it again. Set by the worker that decoded it.
ALTER TABLE images ADD COLUMN cut_off BOOLEAN NOT NULL DEFAULT FALSE;
