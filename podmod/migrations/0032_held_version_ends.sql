-- A held version may end without being applied: `rejected` by a podmin (`podmod lists reject`,
-- who and why kept here and in the audit log), or `withdrawn` by its publisher (its server
-- serves the version in force's file, or its entries, again). Neither can be approved after.
ALTER TABLE podmod.list_versions DROP CONSTRAINT list_versions_status_check;
ALTER TABLE podmod.list_versions ADD CONSTRAINT list_versions_status_check
    CHECK (status IN ('applied', 'held', 'superseded', 'rejected', 'withdrawn'));
ALTER TABLE podmod.list_versions ADD COLUMN rejected_by text, ADD COLUMN rejected_reason text;
