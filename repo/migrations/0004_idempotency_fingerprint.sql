-- What the first request with a key looked like (its length), so that the key
-- sent again with a different request is refused rather than answered as the first.
ALTER TABLE idempotency ADD COLUMN fingerprint TEXT;
