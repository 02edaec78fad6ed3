"""The entry point: parse, load the configuration, run one command (or open the deck)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Sequence

from flowdeck.cli.common import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    Context,
    Interrupts,
    Printer,
    error,
)
from flowdeck.cli.options import Commands, Handler, global_options, remote_options
from flowdeck.cli.registry import GROUPS
from flowdeck.client.resolve import AmbiguousIdError
from flowdeck.config import ConfigError, Settings, load_settings
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.sanitize import sanitize_line

EXIT_CODES = """\
exit codes:
  0    done; a run ended in SUCCESS
  1    a run (or action) ended in another state: FAILED, KILLED, WARNING, CANCELLED
  2    bad input or configuration, an unknown or ambiguous id, a refusal, or a change asked
       of a data dir another engine holds (one line on stderr says what)
  3    the run waits, PAUSED for an approval or a resume
  4    Ctrl-C while waiting on a server's run: it goes on there
  130  Ctrl-C on the embedded engine: the run stops with this process and continues at the
       next start; 143 for SIGTERM, likewise
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowdeck", description="A terminal control deck for workflow runs. Without a "
        "command, opens the deck.", epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    global_options(parser, top=True)
    remote_options(parser, top=True)
    parser.add_argument("--json", action="store_true", default=False,
                        help="machine output, for the commands that have it")
    # With no command, `flowdeck` opens the deck (the TUI); these flags are for it.
    parser.add_argument("--read-only", action="store_true", default=None,
                        help="the deck: hide every state-changing action")
    parser.add_argument("--demo", action="store_true",
                        help="the deck: apply the bundled examples and start some runs")
    parser.add_argument("--serve", metavar="HOST:PORT",
                        help="the deck on the embedded engine: also serve the HTTP API (as "
                        "`flowdeck serve` does) from the same process")
    commands = Commands(parser.add_subparsers(dest="command", metavar="COMMAND",
                                              title="commands"))
    for group in GROUPS:
        group.register(commands)
    return parser


async def run_command(handler: Handler, args: argparse.Namespace, settings: Settings) -> int:
    """Run one command. Ctrl-C and SIGTERM cancel it (the engine closes cleanly, task
    subprocesses stop, unfinished runs stay recoverable), unless the command answers Ctrl-C
    itself (`run` detaches); SIGTERM is CI cancelling a job, `timeout`, `kill`."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupts = Interrupts(task)
    installed = []
    for sig, on_signal in ((signal.SIGTERM, interrupts.on_sigterm),
                           (signal.SIGINT, interrupts.on_sigint)):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, on_signal)
            installed.append(sig)
    try:
        code = await handler(Context(args, settings, Printer(), interrupts))
        # A SIGTERM that came while the backend closed (it was let finish): still reported.
        return EXIT_TERMINATED if interrupts.terminated else code
    except asyncio.CancelledError:
        if interrupts.terminated:
            return EXIT_TERMINATED
        if interrupts.take_ctrl_c():
            return EXIT_INTERRUPTED
        raise
    finally:
        for sig in installed:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)


def loop_factory(args: argparse.Namespace) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop for the commands that ask for it (`serve`), where it is installed."""
    if not getattr(args, "uvloop", False):
        return None
    try:
        import uvloop
    except ImportError:
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def ambiguous(exc: AmbiguousIdError) -> None:
    """The one-line error, then the candidates (sanitised: they quote flows and titles)."""
    error(str(exc))
    for candidate in exc.candidates[:10]:
        print(f"  {candidate.id}  {sanitize_line(candidate.summary, 120)}", file=sys.stderr)
    if len(exc.candidates) > 10:
        print(f"  ... and {len(exc.candidates) - 10} more", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Handler | None = getattr(args, "handler", None)
    if args.json and not getattr(args, "accepts_json", False):
        error(f"--json does not apply to `{args.command or 'flowdeck'}"
              f"{' ' + args.action if getattr(args, 'action', None) else ''}`")
        return EXIT_USAGE
    try:
        settings = load_settings(args.config, data_dir=args.data_dir)
        if handler is None:
            from flowdeck.cli.deck import run_deck

            return run_deck(args, settings)
        with asyncio.Runner(loop_factory=loop_factory(args)) as runner:
            return runner.run(run_command(handler, args, settings))
    except AmbiguousIdError as exc:
        ambiguous(exc)
        return EXIT_USAGE
    except (FlowdeckError, ConfigError) as exc:
        error(str(exc))
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`flowdeck ... | head`): stop quietly, and keep Python from
        # complaining again when it flushes stdout at exit.
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
