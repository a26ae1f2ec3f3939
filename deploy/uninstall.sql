-- Undo deploy/grants.sql and `podmod init`: podmod's schema with everything in it, every privilege
-- role podmod holds (CONNECT on this database included), and the role. Run it once, as the
-- database owner or postgres, in the pod's database, after stopping podmod's units and cron:
--   runuser -u postgres -- psql -v ON_ERROR_STOP=1 -d diaspora_production < deploy/uninstall.sql
-- diaspora*'s tables keep nothing of podmod but the users.locked_at and reports.reviewed values it
-- set. With state_database_url pointing elsewhere, run `DROP SCHEMA podmod CASCADE;` there first.

DROP SCHEMA IF EXISTS podmod CASCADE;

DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'podmod') THEN
        DROP OWNED BY podmod;  -- revokes what grants.sql gave, here and on this database
        DROP ROLE podmod;
    END IF;
END
$$;
