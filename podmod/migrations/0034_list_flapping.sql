-- A list's server that flaps (a cache or load balancer serving two files in turn, a mirror behind
-- its origin): a file served again after the decision on it is recognised by its digest, and what
-- it met is counted here rather than logged or told each time (podmod.lists.sync).
ALTER TABLE podmod.list_versions
    -- times its file (or, while it stays held, the version in force's) was served again and
    -- nothing was told: a rejected file, a held one flapping with the version in force
    ADD COLUMN served_again integer NOT NULL DEFAULT 0,
    -- when its own file was last served (a held version: whether its server still serves it)
    ADD COLUMN last_served_at timestamptz,
    -- when it was last held again, withdrawn and then served again (a flapping source)
    ADD COLUMN held_again_at timestamptz;
