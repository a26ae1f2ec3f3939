"""Numbered SQL migrations of schema podmod, applied in order by `podmod init`."""
