-- Whether a list still holds an entry: what a retracted signal's reason asks first (account and pod
-- signals, podmod.lists.apply; content signals, podmod.scan.signals).
CREATE FUNCTION podmod.entry_listed(list_id integer, kind text, value text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM podmod.list_entries e
        WHERE e.list_id = entry_listed.list_id AND e.kind = entry_listed.kind
          AND e.value = entry_listed.value AND e.removed_in IS NULL)
$$;
