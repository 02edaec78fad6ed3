"""The client layer: one Backend interface over the embedded engine or a remote server."""
