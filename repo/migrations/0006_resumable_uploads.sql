-- Resumable (tus) uploads: how far each has come, so that any web server can
-- take it up again, and the parts its bytes are stored in until it is whole.
CREATE TABLE resumable_uploads (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    -- The address it was created from, as for an image.
    client TEXT,
    -- The file's name, for people; never part of a path.
    name TEXT NOT NULL,
    length BIGINT NOT NULL,
    -- Bytes stored so far: the sum of its parts' bytes.
    received BIGINT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- After this it is removed with its parts, finished or not.
    expires_ms BIGINT NOT NULL,
    -- The JSON answer once its image was accepted; NULL until then.
    answer TEXT,
    -- The creation's `Idempotency-Key`, if it had one: its retry gets this upload, not a second.
    request_key TEXT
);

CREATE UNIQUE INDEX resumable_uploads_by_request_key ON resumable_uploads (owner, request_key) WHERE request_key IS NOT NULL;

CREATE INDEX resumable_uploads_by_expiry ON resumable_uploads (expires_ms);
CREATE INDEX resumable_uploads_open_of_owner ON resumable_uploads (owner, expires_ms) WHERE answer IS NULL;
CREATE INDEX resumable_uploads_open_from_client ON resumable_uploads (client, expires_ms) WHERE answer IS NULL;

CREATE TABLE resumable_parts (
    upload TEXT NOT NULL,
    start BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    -- The random number that names the part's file.
    part BIGINT NOT NULL,
    PRIMARY KEY (upload, start)
);
