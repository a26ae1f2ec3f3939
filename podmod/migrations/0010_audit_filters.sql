-- The audit page's filters: by action (and the menu of actions, read by skipping through this
-- index rather than scanning the log) and by actor whatever its case.
CREATE INDEX audit_by_action ON podmod.audit (action, at DESC, id DESC);
CREATE INDEX audit_by_actor ON podmod.audit (lower(actor), at DESC, id DESC);
