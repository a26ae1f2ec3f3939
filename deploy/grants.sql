-- A least-privilege PostgreSQL role for podmod. Run once, as the database owner or postgres, in the
-- pod's database:   runuser -u postgres -- psql -v ON_ERROR_STOP=1 -d diaspora_production < deploy/grants.sql
-- then give it a password:   ALTER ROLE podmod PASSWORD '...';   (or use peer/trust on a socket)
--
-- podmod may READ the diaspora* tables it needs, WRITE exactly users.locked_at and
-- reports.reviewed, and do anything in its own schema `podmod`. Nothing else.

DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'podmod') THEN
        CREATE ROLE podmod LOGIN;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO podmod', current_database());
END
$$;

GRANT USAGE ON SCHEMA public TO podmod;

-- What podmod reads.
GRANT SELECT ON reports, posts, comments, people, profiles, roles, pods, photos, tags, taggings,
    contacts, blocks, mentions, account_deletions, account_migrations TO podmod;
-- Of users, only what sign-in, locking, the case page and podmod's mail need (no tokens, no keys):
-- email and language address the staff's alerts (README, "Notifications").
GRANT SELECT (id, username, encrypted_password, locked_at, otp_required_for_login,
    plain_otp_secret, consumed_timestep, created_at, last_seen, sign_in_count, email, language)
    ON users TO podmod;

-- What podmod writes in diaspora*'s tables: these two columns, nothing else.
GRANT UPDATE (locked_at) ON users TO podmod;
GRANT UPDATE (reviewed) ON reports TO podmod;

-- podmod's own state.
CREATE SCHEMA IF NOT EXISTS podmod AUTHORIZATION podmod;
