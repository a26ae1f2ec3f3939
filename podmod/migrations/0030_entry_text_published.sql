-- An obfuscated entry (value 'sha256:<hex>', matched by its digest) is named as the list and the
-- version page show it, `pod:exa**le.org (SHA-256 3f2a…)`, not as a bare 64-hex digest: in a
-- list match's signal (the case page, `podmod case show`), a held lock's entry and a lock's
-- reason. As podmod.lists.versions.entry_text() in Python.

CREATE FUNCTION podmod.entry_text(kind text, value text, published text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN published <> ''
                THEN kind || ':' || published || ' (SHA-256 '
                     || left(regexp_replace(value, '^sha256:', ''), 12) || '…)'
                WHEN kind = 'pod' AND left(value, 1) = '='
                THEN kind || ':' || substr(value, 2) || ' (this host only)'
                ELSE kind || ':' || value END
$$;

-- (kept for what calls it with the kind and the value alone: an entry without published text)
CREATE OR REPLACE FUNCTION podmod.entry_text(kind text, value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT podmod.entry_text(kind, value, '')
$$;

-- An entry in force of a list, named with its published text when it is known only by a digest
-- (looked up by list_entries_active, and only then).
CREATE FUNCTION podmod.list_entry_text(list_id integer, kind text, value text) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT podmod.entry_text(
        kind, value,
        CASE WHEN left(value, length('sha256:')) = 'sha256:'
             THEN coalesce((SELECT e.published FROM podmod.list_entries e
                            WHERE e.value = list_entry_text.value
                              AND e.kind = list_entry_text.kind
                              AND e.list_id = list_entry_text.list_id
                              AND e.removed_in IS NULL), '')
             ELSE '' END)
$$;

-- The matches recorded before this migration name such an entry so too.
UPDATE podmod.signals
SET details = details || jsonb_build_object(
    'entry', podmod.list_entry_text(list_id, entry_kind, entry_value))
WHERE kind = 'list' AND left(entry_value, length('sha256:')) = 'sha256:';
