-- A first version of a million entries, stored with fewer indexes to keep.

-- Nothing looks an entry up by its id: a version ends the entries it changes by their key (list,
-- kind and value in force: list_entries_active), and the id only orders a kind's entries for
-- reading them in ranges (podmod.scan.entries). Its primary key's index was built again after
-- every first version's COPY (0.19 s of a million entries) and grew with every entry added: the
-- id stays, unique as the sequence gives it, without the index.
ALTER TABLE podmod.list_entries DROP CONSTRAINT list_entries_pkey;
-- Without a key, the table has no replica identity, and a database that publishes all its tables
-- (logical replication, as an upgrade of PostgreSQL without downtime sets up) refuses to update
-- or delete its rows: every sync that ends an entry would fail. Its whole row identifies it instead
-- (this costs nothing unless the server's wal_level is logical; then an update logs the old row).
ALTER TABLE podmod.list_entries REPLICA IDENTITY FULL;

-- The two BRIN indexes (list and version; kind) become one over the four columns (a BRIN answers
-- a condition on any of its columns alone): every row stored kept both up to date, 0.1 s of a
-- million rows' COPY, for what one keeps as well. The id is in it for the ranges read by id.
DROP INDEX podmod.list_entries_history;
DROP INDEX podmod.list_entries_kinds;
CREATE INDEX list_entries_ranges ON podmod.list_entries
    USING brin (list_id, added_in, kind, id);
