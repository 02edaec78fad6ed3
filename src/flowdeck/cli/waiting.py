"""Waiting for a run: until it ends (or waits), printing its logs live, and what Ctrl-C does.

Ctrl-C while a command waits on a run detaches from it instead of killing anything:

- on a server the run goes on; the command says so and how to pick it up again, and exits 4;
- on the embedded engine the run lives in this process. At a terminal the command asks: keep
  following, kill the run, or stop here; anywhere else (or on "stop") it says exactly what
  happens: the run stops with the process and continues when an engine next opens the data
  dir (a task cut short runs again, or fails if it may have had side effects), and exits 130.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from datetime import UTC, datetime

from flowdeck.cli.common import (
    EXIT_DETACHED,
    EXIT_INTERRUPTED,
    Context,
    Printer,
    UsageError,
    closing,
    error,
)
from flowdeck.cli.session import Session
from flowdeck.cli.views import exit_code, short_duration, show_failure
from flowdeck.core.models import LEVEL_RANK, Execution, LogEntry
from flowdeck.core.states import is_terminal

#: How long a kill chosen after Ctrl-C may take to end the run.
KILL_WAIT = 60.0


async def settled(session: Session, execution_id: str, *, through_pause: bool) -> Execution:
    """The execution once it ended (or, without through_pause, once it waits)."""
    backend = session.backend
    last: Execution | None = None
    async with closing(backend.follow_execution(execution_id)) as stream:
        async for snapshot in stream:
            last = snapshot
            if is_terminal(snapshot.state.current):
                break
            if not through_pause and snapshot.state.current == "PAUSED":
                break
    if last is not None and is_terminal(last.state.current):
        await session.released(execution_id)
    final = await backend.get_execution(execution_id)
    if last is not None and is_terminal(last.state.current) \
            and not is_terminal(final.state.current):
        return last
    return final


class Follower:
    """Waits for one execution, printing its log lines (at `level` and above) as they come;
    each line once, even when the wait is interrupted and taken up again."""

    def __init__(self, session: Session, execution_id: str, printer: Printer | None,
                 level: str | None = None) -> None:
        self.session = session
        self.execution_id = execution_id
        self.printer = printer
        self.floor = LEVEL_RANK[level] if level else None
        self.last = 0

    def show(self, entry: LogEntry) -> None:
        if entry.seq <= self.last or self.printer is None:
            return
        self.last = entry.seq
        if self.floor is None or LEVEL_RANK.get(entry.level, 0) >= self.floor:
            self.printer.log(entry)

    async def until_settled(self, *, through_pause: bool) -> Execution:
        if self.printer is None:
            return await settled(self.session, self.execution_id, through_pause=through_pause)
        backend = self.session.backend

        async def pump() -> None:
            async with closing(backend.follow_logs(self.execution_id,
                                                   after_seq=self.last)) as stream:
                async for entry in stream:
                    self.show(entry)

        follower = asyncio.ensure_future(pump())
        try:
            final = await settled(self.session, self.execution_id,
                                  through_pause=through_pause)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if not follower.cancelled() and follower.exception() is not None:
            raise follower.exception()  # type: ignore[misc]
        for rest in await backend.logs(self.execution_id, after_seq=self.last):
            self.show(rest)  # whatever committed after the last line shown
        return final


async def wait_for_run(ctx: Context, follower: Follower, *,
                       through_pause: bool) -> Execution | int:
    """The execution once settled; after Ctrl-C, the exit code the command ends with (or
    the killed execution, when the operator chose to kill it)."""
    while True:
        try:
            return await follower.until_settled(through_pause=through_pause)
        except asyncio.CancelledError:
            if not ctx.interrupts.take_ctrl_c():
                raise
        outcome = await on_ctrl_c(ctx, follower.session, follower.execution_id)
        if outcome is not None:
            return outcome


def reach_again(ctx: Context, session: Session) -> str:
    """The option that reaches the same server again (`--profile NAME` or `--url URL`)."""
    profile = getattr(ctx.args, "profile", None)
    return f"--profile {profile}" if profile else f"--url {session.backend.name}"


async def on_ctrl_c(ctx: Context, session: Session, execution_id: str
                    ) -> Execution | int | None:
    """Ctrl-C while waiting: an exit code, the killed execution, or None to keep waiting."""
    if session.local is None:
        where = reach_again(ctx, session)
        error(f"detached: execution {execution_id} goes on at {session.backend.name}; "
              f"follow it with `flowdeck logs {execution_id} -f {where}`, see it with "
              f"`flowdeck executions show {execution_id} {where}`")
        return EXIT_DETACHED
    current = await session.backend.get_execution(execution_id)
    if is_terminal(current.state.current):
        return None  # it has just ended: report it
    if interactive():
        try:
            choice = await ask(
                f"\nexecution {execution_id} is {current.state.current} in this process. "
                "[c] keep following, [k] kill it, [s] stop here (it stops with this "
                "process and continues at the next start)? [c] ", "cks", default="c")
        except asyncio.CancelledError:
            if not ctx.interrupts.take_ctrl_c():
                raise
            choice = "s"  # a second Ctrl-C: stop here
        if choice == "c":
            sys.stderr.write(f"following execution {execution_id} again\n")
            sys.stderr.flush()
            return None
        if choice == "k":
            await session.backend.kill(execution_id)
            try:
                async with asyncio.timeout(KILL_WAIT):
                    return await settled(session, execution_id, through_pause=True)
            except TimeoutError:
                raise UsageError(f"execution {execution_id} did not end within "
                                 f"{KILL_WAIT:g} s of the kill") from None
    error(left_behind(current, session))
    return EXIT_INTERRUPTED


def left_behind(current: Execution, session: Session) -> str:
    """What becomes of an in-process run when this process stops now."""
    where = session.where
    state = current.state.current
    if state == "PAUSED":
        return (f"interrupted: execution {current.id} stays PAUSED in {where}; decide it with "
                f"`flowdeck approvals approve|reject {current.id}` (it goes on when an engine "
                "next opens the data dir)")
    if state in ("CREATED", "QUEUED"):
        return (f"interrupted: execution {current.id} stays {state} in {where}; it starts "
                "when an engine next opens the data dir (the deck, `flowdeck serve`, or a "
                "command that changes something)")
    return (f"interrupted: execution {current.id} stops with this process and stays "
            f"{state} in {where}; it continues when an engine next opens the data dir (the "
            "deck, `flowdeck serve`, or a command that changes something): a task cut short "
            "runs again, or fails if it may have had side effects (shell commands, HTTP "
            "requests) unless it sets retryOnCrash: true")


def interactive() -> bool:
    """Whether someone at a terminal can answer a question (stdin and stderr are ttys)."""
    try:
        return sys.stdin.isatty() and sys.stderr.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


async def ask(prompt: str, choices: str, *, default: str) -> str:
    """Ask on stderr, read one line from the terminal without blocking the loop (the run
    goes on meanwhile); an empty answer or end of input is `default`."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    while True:
        sys.stderr.write(prompt)
        sys.stderr.flush()
        answer: asyncio.Future[str] = loop.create_future()
        buffer = bytearray()

        def readable(answer: asyncio.Future[str] = answer, buffer: bytearray = buffer) -> None:
            try:
                chunk = os.read(fd, 256)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if answer.done():
                return
            if not chunk:
                answer.set_result("")
                return
            buffer.extend(chunk)
            if b"\n" in buffer or b"\r" in buffer:
                answer.set_result(buffer.splitlines()[0].decode(errors="replace"))

        loop.add_reader(fd, readable)
        try:
            text = (await answer).strip().lower()
        finally:
            loop.remove_reader(fd)
        if not text:
            return default
        if text[0] in choices:
            return text[0]


async def report_final(ctx: Context, session: Session, final: Execution) -> int:
    """Print how the run ended (JSON with --json) and return the exit code it means."""
    p = ctx.out
    if ctx.json:
        p.json(final.to_dict(datetime.now(UTC)))
        return exit_code(final)
    state = final.state.current
    if is_terminal(state) and state != "SUCCESS":
        await show_failure(session.backend, final, p)
    p.line(f"execution {final.id} {state} in {short_duration(final)}")
    if state == "PAUSED":
        p.line("it is waiting (a pause or an approval); decide with `flowdeck approvals "
               f"approve|reject {final.id}` or resume it from the deck")
    return exit_code(final)
