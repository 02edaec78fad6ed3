"""The HTTP server: the engine behind the APIs documented in shared/spec, one dialect each."""
