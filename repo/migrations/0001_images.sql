-- One row per image: everything thumbq knows about it. The store keeps only bytes.
-- The same SQL runs on SQLite and PostgreSQL: times are milliseconds since the
-- Unix epoch, ids and hashes are text.
CREATE TABLE images (
    -- The server-made UUID v7, hyphenated: the image's link, and its store keys.
    id TEXT PRIMARY KEY,
    -- The SHA-256 of the owner's key, 64 hex digits; never the key.
    owner TEXT,
    -- The name the file was sent under, cleaned for display; never part of a path.
    name TEXT,
    -- What the upload's first bytes said it is (`jpeg`, `heic`, ...).
    format TEXT,
    bytes BIGINT NOT NULL,
    -- The SHA-256 of the original's bytes.
    content_hash TEXT,
    width BIGINT,
    height BIGINT,
    created_ms BIGINT NOT NULL,
    -- The format each baseline thumbnail was written in (`jpg` or `png`), once it is.
    small TEXT,
    medium TEXT,
    large TEXT,
    -- Whether the three WebPs are written.
    webp BOOLEAN NOT NULL DEFAULT FALSE,
    -- The ThumbHash, base64, from the first thumbnail on.
    placeholder TEXT,
    -- When the job wrote its last file, durably.
    done_ms BIGINT,
    -- Why the job failed for good, for people; and whether a replay may help.
    failure TEXT,
    failure_retryable BOOLEAN,
    failed_ms BIGINT,
    -- Set once deleted: the row stays as the image's tombstone (410), all else cleared.
    deleted_ms BIGINT
);

CREATE INDEX images_of_owner ON images (owner, id) WHERE deleted_ms IS NULL;
CREATE INDEX images_failed ON images (failed_ms) WHERE failure IS NOT NULL AND deleted_ms IS NULL;
CREATE INDEX images_by_age ON images (created_ms) WHERE deleted_ms IS NULL;

-- The steps of an image's way, each side's own rows: the web server's and the worker's.
CREATE TABLE steps (
    image_id TEXT NOT NULL REFERENCES images (id) ON DELETE CASCADE,
    at_ms BIGINT NOT NULL,
    -- Orders the steps of one batch that share a millisecond.
    seq BIGINT NOT NULL,
    step TEXT NOT NULL,
    -- `web@host:pid`, `worker@host:pid`.
    by_process TEXT NOT NULL
);

CREATE INDEX steps_of_image ON steps (image_id, at_ms);
