-- When and as which file each version was signed (the `timestamp:` and `file:` of its minisign
-- trusted comment): a version signed before the one in force is refused as a possible replay.
ALTER TABLE podmod.list_versions
    ADD COLUMN signed_at timestamptz,        -- NULL: unsigned, or signed without a timestamp
    ADD COLUMN signed_file text;

-- Versions stored before kept their trusted comment: read it as podmod.lists.minisign does
-- (the first timestamp field, decimal seconds up to the year 9999), so the version in force
-- guards against replays from the first sync on.
UPDATE podmod.list_versions v SET
    signed_at = CASE WHEN f.stamp ~ '^[0-9]{1,12}$' AND f.stamp::bigint <= 253402300799
                     THEN to_timestamp(f.stamp::bigint) END,
    signed_file = nullif(f.file, '')
FROM (
    SELECT id,
           (SELECT substr(part, 11) FROM unnest(string_to_array(signed_comment, E'\t'))
                WITH ORDINALITY AS t (part, n)
            WHERE part LIKE 'timestamp:%' ORDER BY n LIMIT 1) AS stamp,
           (SELECT substr(part, 6) FROM unnest(string_to_array(signed_comment, E'\t'))
                WITH ORDINALITY AS t (part, n)
            WHERE part LIKE 'file:%' ORDER BY n LIMIT 1) AS file
    FROM podmod.list_versions WHERE signed_comment IS NOT NULL
) f
WHERE v.id = f.id;
