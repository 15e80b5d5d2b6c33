"""Versioned SQL migrations (data files read by :mod:`citywatch.stream.migrate`)."""
