-- Where a list's server last said the list moved for good (every redirect to it permanent, 301 or
-- 308), as `podmod lists show` and the lists page tell the podmin, whom cron mails only when a
-- sync fails: the old address redirects only as long as its server keeps it. NULL: not moved.
ALTER TABLE podmod.lists ADD COLUMN moved_to text;
