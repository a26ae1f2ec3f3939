-- The key signing the links podmod mails (a locked account's appeal link, a reporter's opt-out
-- link), made once by the first process that needs it, so that every process of the install (the
-- worker writing the mail, the web answering the link) signs and checks with the same key whether
-- or not secret_key is set. Deleting the row voids every link mailed so far.
CREATE TABLE podmod.link_key (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    key bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
