-- Whether a version's file says its publisher keeps some of its blocks out of it (a Pleroma or
-- Akkoma server's `exclusions: true`, its MRF transparency exclusions): `lists show` and the sync
-- log say so, for the podmin to know the list is not all its publisher blocks.
ALTER TABLE podmod.list_versions ADD COLUMN hides_blocks boolean NOT NULL DEFAULT false;
