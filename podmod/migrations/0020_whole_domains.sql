-- Every name a host answers to as a list entry (as podmod.lists.apply.host_names() gives them):
-- itself and each parent domain on label boundaries down to its top-level domain, which lists
-- block whole (`cf` covers every host under .cf), each with and without the host's port. An IP
-- address answers only to itself: `1.2.3.4:8443` to `1.2.3.4:8443` and `1.2.3.4`,
-- `[2001:db8::2]:8443` to `[2001:db8::2]:8443` and `[2001:db8::2]`.
CREATE OR REPLACE FUNCTION podmod.host_names(host text) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT ARRAY(
        SELECT array_to_string(h.labels[i:], '.') || s.port
        FROM (SELECT CASE WHEN a.name LIKE '[%' OR a.name ~ '^[0-9]+(\.[0-9]+){3}$'
                          THEN ARRAY[a.name] ELSE string_to_array(a.name, '.') END AS labels,
                     nullif(split_part(a.after, ':', 2), '') AS port
              FROM (SELECT CASE WHEN host ~ '^\[.*\]' THEN substring(host FROM '^\[[^]]*\]')
                                ELSE split_part(host, ':', 1) END AS name,
                           CASE WHEN host ~ '^\[.*\]' THEN substring(host FROM '^\[[^]]*\](.*)$')
                                ELSE host END AS after) a) h,
             generate_series(1, greatest(cardinality(h.labels), 1)) AS i,
             LATERAL (VALUES (''), (':' || h.port)) AS s (port)
        WHERE s.port IS NOT NULL
        ORDER BY i, s.port DESC)
$$;
