-- An owner's delete can be undone for a while (`--undo-delete-secs`): until
-- then the image is in the trash, set here. Every page and link treats it as
-- deleted; its files and its job stay, so that Undo gives it back whole. The
-- reconciler deletes it for good once the time is up.
ALTER TABLE images ADD COLUMN trashed_ms BIGINT;

CREATE INDEX images_trashed ON images (trashed_ms) WHERE trashed_ms IS NOT NULL AND deleted_ms IS NULL;
