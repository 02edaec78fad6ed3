"""What every command shares: exit codes, the usage error, sanitised output, Ctrl-C handling."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import signal
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any, TextIO, TypeVar

from flowdeck.config import Settings
from flowdeck.core.errors import FlowdeckError
from flowdeck.core.models import LogEntry
from flowdeck.core.sanitize import sanitize, sanitize_line

#: Exit codes (README, "Command line"). 0: done, the run ended in SUCCESS. 1: the run (or
#: action) ended in another state. 2: bad input or configuration, an unknown or ambiguous id,
#: a refusal, or a change asked of a data dir another engine holds. 3: the run waits, PAUSED for
#: an approval or a resume. 4: Ctrl-C while waiting on a server's run: it goes on there.
#: 130: Ctrl-C on the embedded engine: the run stops with this process. 143: SIGTERM, likewise.
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_PAUSED, EXIT_DETACHED = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 128 + signal.SIGINT, 128 + signal.SIGTERM


T = TypeVar("T")


class UsageError(FlowdeckError):
    """Bad command-line input."""


@asynccontextmanager
async def closing(stream: AsyncIterator[T]) -> AsyncIterator[AsyncIterator[T]]:
    """A backend stream that is closed (its pump stopped, its connection released) as the
    block ends, however it ends; backends' streams are async generators."""
    try:
        yield stream
    finally:
        if isinstance(stream, AsyncGenerator):
            await stream.aclose()


def parse_pairs(pairs: Sequence[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} '{pair}' must look like KEY=VALUE")
        out[key] = value
    return out


def error(message: str) -> None:
    """One `flowdeck: ...` line on stderr (sanitised: it may quote a flow or a server)."""
    print(f"flowdeck: {sanitize_line(message, 2000)}", file=sys.stderr, flush=True)


_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
                          "\u2028\u2029]")


class Printer:
    """Human output, sanitised: flow, log and user text never reaches the terminal raw."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out

    @property
    def out(self) -> TextIO:
        return self._out if self._out is not None else sys.stdout  # as it is now

    def line(self, text: str = "") -> None:
        print(sanitize(text), file=self.out, flush=True)

    def json(self, value: Any) -> None:
        # json.dumps escapes C0 controls but writes DEL, C1 (8-bit CSI/OSC...) and bidi
        # controls raw with ensure_ascii=False; escape those too (lossless, still valid JSON).
        text = _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}",
                                json.dumps(value, indent=2, ensure_ascii=False))
        print(text, file=self.out, flush=True)

    def table(self, headers: list[str], rows: list[list[str]]) -> None:
        cells = [[sanitize_line(c, 80) for c in row] for row in rows]
        widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, h in enumerate(headers)]
        self.out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))
                       .rstrip() + "\n")
        for row in cells:
            self.out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                           .rstrip() + "\n")
        self.out.flush()

    def log(self, entry: LogEntry, indent: str = "") -> None:
        task = entry.task_id or "-"
        self.out.write(f"{indent}{entry.timestamp[11:23]} {entry.level:<5} "
                       f"{sanitize_line(task, 40)}  "
                       f"{sanitize_line(entry.message)}\n")
        self.out.flush()


class Interrupts:
    """Ctrl-C and SIGTERM for one command: each cancels the command's task, and the command
    can tell afterwards which one did (`take_ctrl_c`) to answer Ctrl-C its own way.

    While `deferred()` runs (a backend closing cleanly), a signal only marks itself: the close
    is never cut short; SIGTERM is still reported when the command ends.
    """

    def __init__(self, task: asyncio.Task[Any]) -> None:
        self._task = task
        self.ctrl_c = 0
        self.terminated = False
        self._deferred = 0

    def on_sigint(self) -> None:
        self.ctrl_c += 1
        if not self._deferred:
            self._task.cancel()

    def on_sigterm(self) -> None:
        if not self.terminated:  # a second one must not interrupt the clean close
            self.terminated = True
            if not self._deferred:
                self._task.cancel()

    def take_ctrl_c(self) -> bool:
        """After a CancelledError: True when Ctrl-C caused it (not SIGTERM, not a caller);
        the cancellation is then withdrawn, so the command can go on and decide."""
        if not self.ctrl_c or self.terminated:
            return False
        self.ctrl_c = 0
        while self._task.cancelling():
            self._task.uncancel()
        return True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        self._deferred += 1
        try:
            yield
        finally:
            self._deferred -= 1


@dataclass(slots=True)
class Context:
    """One command's arguments, settings, output and signals."""

    args: argparse.Namespace
    settings: Settings
    out: Printer
    interrupts: Interrupts

    @property
    def json(self) -> bool:
        return bool(getattr(self.args, "json", False))
