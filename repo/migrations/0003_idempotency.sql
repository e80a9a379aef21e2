-- An upload's `Idempotency-Key`, per owner: a retried request gets the first
-- request's answer instead of a second image.
CREATE TABLE idempotency (
    owner TEXT NOT NULL,
    request_key TEXT NOT NULL,
    created_ms BIGINT NOT NULL,
    -- The answer (JSON) once the first request has one; NULL while it runs.
    answer TEXT,
    PRIMARY KEY (owner, request_key)
);

CREATE INDEX idempotency_by_age ON idempotency (created_ms);

-- The same bytes uploaded again by the same owner are the same image.
CREATE INDEX images_by_content ON images (owner, content_hash) WHERE deleted_ms IS NULL;

-- The SHA-256 of the image's own delete token, which deletes this image and no other.
ALTER TABLE images ADD COLUMN delete_token_hash TEXT;
