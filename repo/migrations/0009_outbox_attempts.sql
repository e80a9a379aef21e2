-- With no RabbitMQ, the outbox is the queue itself: workers take their jobs
-- from it. A job tried and failed waits in its row (free again at
-- lease_until_ms) with the number of tries it had.
ALTER TABLE outbox ADD COLUMN attempts BIGINT NOT NULL DEFAULT 0;
