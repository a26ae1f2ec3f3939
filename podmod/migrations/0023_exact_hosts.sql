-- An entry for one host alone, none of its subdomains, is stored as `=` and the host
-- (podmod.lists.parse.EXACT_HOST): a Pleroma or Akkoma server's plain `pod.example`, which its
-- MRF matches with that host only (its `*.pod.example` is a pod entry as any, covering the
-- domain and its subdomains). A host also answers to its own names so written (with and without
-- its port), on allowlists too; signals and pages name such an entry `pod:pod.example (this host
-- only)`.

CREATE FUNCTION podmod.entry_text(kind text, value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT kind || ':' || CASE WHEN kind = 'pod' AND left(value, 1) = '='
                               THEN substr(value, 2) || ' (this host only)' ELSE value END
$$;

CREATE OR REPLACE FUNCTION podmod.allowlisted(account text, local boolean) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (
               SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
               WHERE e.removed_in IS NULL AND e.kind = 'account' AND e.value = allowlisted.account)
        OR (NOT allowlisted.local AND EXISTS (
               SELECT 1 FROM podmod.list_entries e
               JOIN podmod.lists l ON l.id = e.list_id AND l.policy = 'allow'
               CROSS JOIN (SELECT split_part(allowlisted.account, '@', 2) AS name) h
               WHERE e.removed_in IS NULL AND e.kind = 'pod'
                 AND e.value = ANY (podmod.host_names(h.name)
                                    || ARRAY['=' || h.name,
                                             '=' || regexp_replace(h.name, ':[0-9]+$', '')])))
$$;
