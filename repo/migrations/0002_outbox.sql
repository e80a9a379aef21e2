-- The outbox: a job accepted and not yet handed to the queue (RabbitMQ, or the
-- embedded queue). The upload writes its row in the same transaction as the
-- image's; the row goes once the queue has the job. Any web server relays a
-- row whose lease ran out, so a web server lost after its commit loses nothing.
CREATE TABLE outbox (
    image_id TEXT PRIMARY KEY REFERENCES images (id) ON DELETE CASCADE,
    -- The upload's trace context, carried by the job.
    traceparent TEXT,
    queued_ms BIGINT NOT NULL,
    -- Until when one process is handing it to the queue; 0 when no one is.
    lease_until_ms BIGINT NOT NULL,
    leased_by TEXT
);

CREATE INDEX outbox_free ON outbox (lease_until_ms, queued_ms);

-- When a deleted image's files were all removed from the store; until then the
-- reconciler finishes the delete.
ALTER TABLE images ADD COLUMN purged_ms BIGINT;

CREATE INDEX images_unpurged ON images (deleted_ms) WHERE deleted_ms IS NOT NULL AND purged_ms IS NULL;
CREATE INDEX images_pending ON images (created_ms) WHERE done_ms IS NULL AND failure IS NULL AND deleted_ms IS NULL;

-- Work that one process at a time does (the reconciler): who holds it, until when.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until_ms BIGINT NOT NULL
);
