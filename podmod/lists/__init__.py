"""Shared blocklists: fetch, verify, parse, store and apply."""
