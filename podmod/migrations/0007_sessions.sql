-- Web sessions, server-side: the cookie carries only a random id, whose SHA-256 is the key here, so
-- the user, the password's bcrypt salt at sign-in and the times are podmod's truth, not the
-- browser's. Kept in PostgreSQL, not Redis, so that emptying Redis signs nobody out.
CREATE TABLE podmod.web_sessions (
    id_hash bytea PRIMARY KEY,               -- sha256 of the cookie's session id
    user_id integer NOT NULL,                -- diaspora users.id
    password_salt text NOT NULL,             -- first 29 chars of users.encrypted_password
    stage text NOT NULL CHECK (stage IN ('code', 'signed_in')),  -- code: TOTP step still due
    next_path text,                          -- where to go after the TOTP step
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX web_sessions_by_created ON podmod.web_sessions (created_at);
CREATE INDEX web_sessions_by_user ON podmod.web_sessions (user_id);
