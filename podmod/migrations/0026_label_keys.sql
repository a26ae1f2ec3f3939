-- A label is one label however its words are joined. Publishers write the same reason
-- `hate-speech` (IFTAS, Garden Fence), `Hate speech` (mastodon.social's comments) and
-- `hate_speech`; an entry's labels, and a subscription's `labels` and `lock_labels` that select
-- on them, are now their keys (podmod.lists.parse.label_keys): the words joined by one hyphen,
-- none at the ends, each key once, in the order first written. The entries' `label` (the text
-- shown) is left as it was. A stored entry's labels are rewritten in place rather than read again
-- from the list's file: nothing else about the entry changes, so its matches and cases stay as
-- they are.
CREATE OR REPLACE FUNCTION pg_temp.label_keys(labels text[]) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(array_agg(key ORDER BY first), '{}')
    FROM (SELECT key, min(n) AS first
          FROM unnest(labels) WITH ORDINALITY AS t (label, n),
               LATERAL (SELECT btrim(regexp_replace(label, '[ _-]+', '-', 'g'), '-') AS key) k
          WHERE key <> ''
          GROUP BY key) keys
$$;

UPDATE podmod.list_entries
SET labels = pg_temp.label_keys(labels)
-- (the entries to look at: a label with a space, an underscore, two hyphens or one at an end)
WHERE array_to_string(labels, '|') ~ '[ _]|--|(^|\|)-|-(\||$)'
  AND labels <> pg_temp.label_keys(labels);

UPDATE podmod.lists
SET labels = pg_temp.label_keys(labels), lock_labels = pg_temp.label_keys(lock_labels)
WHERE labels <> pg_temp.label_keys(labels) OR lock_labels <> pg_temp.label_keys(lock_labels);

DROP FUNCTION pg_temp.label_keys(text[]);
