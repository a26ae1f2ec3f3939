-- Rows of a version that name an entry an earlier row already named: merged into that entry (their
-- labels and comment added, the heavier severity kept), counted so that the podmin sees them.
ALTER TABLE podmod.list_versions ADD COLUMN repeated_rows integer NOT NULL DEFAULT 0;
