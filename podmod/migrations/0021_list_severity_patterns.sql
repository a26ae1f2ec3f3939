-- A list's `severity` setting: the severity of its rows that name none (a list of one domain per
-- line, a CSV without a severity column, RapidBlock's blocks); '' for Mastodon's, a suspension.
ALTER TABLE podmod.lists ADD COLUMN severity text NOT NULL DEFAULT ''
    CHECK (severity IN ('', 'suspend', 'silence', 'noop'));

-- Rows of a version that are patterns no host has (`*end.example`, `name.*`), skipped and counted
-- apart from obfuscated domains.
ALTER TABLE podmod.list_versions ADD COLUMN pattern_rows integer NOT NULL DEFAULT 0;
