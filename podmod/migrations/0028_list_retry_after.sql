-- When a list's server, answering 429 Too Many Requests or 503 Service Unavailable, asked not to be
-- asked again before (its Retry-After, honoured for a day at most): syncs until then leave the
-- list alone (`deferred`) rather than ask every 15 minutes a server that is busy or down for
-- maintenance. NULL: it asked nothing. A sync that fetches the list, or one to a new url, forgets it.
ALTER TABLE podmod.lists ADD COLUMN retry_after timestamptz;
