"""One module per command group; each registers its own parser (`register(commands)`)."""
