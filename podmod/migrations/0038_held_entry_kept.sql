-- A held content entry keeps in force the matches it had stored a day or more before the hold
-- (breadth.SETTLED_AFTER): those the queue had before a surge of new authors, which an attacker
-- can cause on purpose. How many it kept, beside what it retracted.
ALTER TABLE podmod.content_entry_holds
    ADD COLUMN matches_kept integer NOT NULL DEFAULT 0;
