-- The settings a list's entries were last applied with (versions.list_settings: policy, kinds,
-- labels, lock_labels, format, require_canary, severity). A sync writes the configuration's
-- settings into the row as it starts, and compares the configuration with these: a setting changed
-- while the list's server failed, or asked to wait, is still applied by the first sync that gets
-- the file (before, the row already held it, and that sync found nothing changed). Rows start
-- with the settings they hold now.
ALTER TABLE podmod.lists ADD COLUMN applied_settings jsonb;
UPDATE podmod.lists SET applied_settings = jsonb_build_object(
    'policy', policy, 'kinds', to_jsonb(kinds), 'labels', to_jsonb(labels),
    'lock_labels', to_jsonb(lock_labels), 'format', format, 'require_canary', require_canary,
    'severity', severity);
