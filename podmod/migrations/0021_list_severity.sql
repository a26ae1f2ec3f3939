-- A list's `severity` setting: the severity of its rows that name none (a list of one domain per
-- line, a CSV without a severity column, RapidBlock's blocks); '' for Mastodon's, a suspension.
ALTER TABLE podmod.lists ADD COLUMN severity text NOT NULL DEFAULT ''
    CHECK (severity IN ('', 'suspend', 'silence', 'noop'));
