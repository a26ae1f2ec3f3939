-- Retention (podmod.retention, README "Disk use and retention"): a version whose ended entries
-- were pruned keeps its row (a case page or an audit line naming "version 12 of list X" still
-- finds it), with when and by which setting its entries went, for its page and `lists diff` to
-- say so instead of showing a diff that is no longer whole.
ALTER TABLE podmod.list_versions
    ADD COLUMN entries_pruned_at timestamptz,
    ADD COLUMN entries_pruned_by text;
