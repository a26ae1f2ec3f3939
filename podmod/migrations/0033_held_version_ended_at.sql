-- When a held version stopped waiting: rejected, withdrawn or superseded (NULL for those that
-- ended before this column: the audit log has their time).
ALTER TABLE podmod.list_versions ADD COLUMN ended_at timestamptz;
