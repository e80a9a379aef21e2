-- The address an upload came from, as the web server saw it (past its trusted
-- proxies), so that one address's uploads of a day can be counted against its
-- quota. Kept on a tombstone (deleting does not give the day's bytes back) and
-- cleared by the reconciler once older than any quota looks.
ALTER TABLE images ADD COLUMN client TEXT;

CREATE INDEX images_of_client ON images (client, created_ms) WHERE client IS NOT NULL;
CREATE INDEX images_of_owner_by_age ON images (owner, created_ms) WHERE owner IS NOT NULL;
