-- Two questions the list and content matching ask in several statements, each written once.

-- Whether a list still holds an entry: what a retracted signal's reason asks first (account and pod
-- signals, podmod.lists.apply; content signals, podmod.scan.signals).
CREATE FUNCTION podmod.entry_listed(list_id integer, kind text, value text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
        SELECT 1 FROM podmod.list_entries e
        WHERE e.list_id = entry_listed.list_id AND e.kind = entry_listed.kind
          AND e.value = entry_listed.value AND e.removed_in IS NULL)
$$;

-- Whether an account is on an allowlist (a list with policy `allow`): by its account entries, or
-- for a remote account by a pod entry covering its host. Each test is one index probe.
CREATE FUNCTION podmod.allowlisted(account text, local boolean) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
               WHERE e.removed_in IS NULL AND e.kind = 'account' AND e.value = allowlisted.account)
        OR (NOT allowlisted.local AND EXISTS (
               SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
               WHERE e.removed_in IS NULL AND e.kind = 'pod'
                 AND e.value = ANY (podmod.host_names(split_part(allowlisted.account, '@', 2)))))
$$;
