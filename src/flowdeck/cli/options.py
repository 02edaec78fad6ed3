"""How a command group registers itself, and the options every command takes.

A group module has one `register(commands)` function that adds its parser with
`commands.command(...)` (one action) or `commands.group(...)` then `actions.add(...)` (several),
naming the handler of each. Global options (`--data-dir`, `--config`, `--url`, `--profile`,
`--json` where a command has it) are accepted before or after the command: the top level
keeps their defaults, every command and action parser accepts them again without one
(`argparse.SUPPRESS`), so a value typed anywhere wins and an absent one erases nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from flowdeck.cli.common import Context

Handler = Callable[[Context], Awaitable[int]]
if TYPE_CHECKING:
    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]


def global_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--data-dir", default=default, metavar="DIR",
                        help="engine data directory (env FLOWDECK_DATA_DIR; default: the user "
                        "data dir)")
    parser.add_argument("--config", default=default, metavar="FILE",
                        help="config file (env FLOWDECK_CONFIG)")


def remote_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument("--url", default=default,
                        help="a server (flowdeck serve or Kestra) instead of the engine in the "
                        "data dir; credentials from FLOWDECK_TOKEN or "
                        "FLOWDECK_USERNAME/FLOWDECK_PASSWORD")
    parser.add_argument("--profile", default=default, metavar="NAME",
                        help="the [profiles.NAME] backend of the config file")


def json_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="machine output: JSON on stdout")
    parser.set_defaults(accepts_json=True)


class Actions:
    """The actions of one command group (`flowdeck executions list|show|...`)."""

    def __init__(self, subparsers: Subparsers, *, remote: bool) -> None:
        self._sub = subparsers
        self._remote = remote

    def add(self, name: str, help: str, handler: Handler, *,
            json: bool = False) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = self._sub.add_parser(name, help=help,
                                                               description=help)
        _common(parser, remote=self._remote, json=json)
        parser.set_defaults(handler=handler)
        return parser


class Commands:
    """The `flowdeck` subcommands, as the group modules register them."""

    def __init__(self, subparsers: Subparsers) -> None:
        self._sub = subparsers

    def command(self, name: str, help: str, handler: Handler, *, remote: bool = True,
                json: bool = False, description: str | None = None) -> argparse.ArgumentParser:
        """A command without actions (`flowdeck run ...`)."""
        parser: argparse.ArgumentParser = self._sub.add_parser(
            name, help=help, description=description or help)
        _common(parser, remote=remote, json=json)
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help: str, *, remote: bool = True) -> Actions:
        """A command group whose actions `Actions.add` registers; its --help lists them."""
        parser: argparse.ArgumentParser = self._sub.add_parser(name, help=help,
                                                               description=help)
        _common(parser, remote=remote, json=False)
        actions = parser.add_subparsers(dest="action", metavar="ACTION", title="actions")
        actions.required = True
        return Actions(actions, remote=remote)


class CommandGroup(Protocol):
    """A module of `flowdeck.cli.commands`: it registers its own parser(s)."""

    def register(self, commands: Commands) -> None: ...


def _common(parser: argparse.ArgumentParser, *, remote: bool, json: bool) -> None:
    global_options(parser)
    if remote:
        remote_options(parser)
    if json:
        json_option(parser)
