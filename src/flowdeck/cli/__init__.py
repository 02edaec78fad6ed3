"""The `flowdeck` command line: scripts and CI drive the same engine the deck shows.

`flowdeck` alone opens the deck (`deck.py`); every other command is a group module in
`commands/`, registered in `registry.py`, running on the client layer (`session.py`): the
engine in the data dir, or a server through `--url` / `--profile`, with one implementation.
Exit codes are in `common.py` and the README.
"""

from flowdeck.cli.deck import DeckServing, build_deck, profile_backend
from flowdeck.cli.main import build_parser, main

__all__ = ["DeckServing", "build_deck", "build_parser", "main", "profile_backend"]
