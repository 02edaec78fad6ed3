"""The deck: a Textual TUI over the client layer (never the engine directly)."""
