"""Shell tasks: `Commands` and `Script`, run as a real subprocess in its own process group.

Each stdout line becomes an INFO log entry and each stderr line a WARN entry; a line of the
form `::{"outputs": {...}}::` sets `outputs.<task>.vars` as in Kestra. Killing or timing out an
attempt terminates the whole process group, so no grandchild outlives its task.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import Field

from flowdeck.engine.tasks.base import RunnableTask, TaskContext, TaskFailure

CHUNK = 1 << 15
KILL_GRACE_S = 1.0
#: How often a child is looked at when no pidfd can be had for it (no file descriptor left).
POLL_S = 0.005
#: Pipe and reader buffer size. Small on purpose: a task that prints faster than lines can be
#: stored waits in its own write() instead of building a backlog that delays live followers.
PIPE_BYTES = 1 << 14


class CommandFailed(TaskFailure):
    """A command ended with a non-zero exit code (negative: killed by that signal)."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _ShellTask(RunnableTask):
    interpreter: list[str] = Field(default_factory=lambda: ["/bin/sh", "-c"])
    env: dict[str, str] = Field(default_factory=dict)
    beforeCommands: list[str] = Field(default_factory=list)
    inputFiles: dict[str, str] = Field(default_factory=dict)
    failFast: bool = True
    warningOnStdErr: bool = False
    outputFiles: list[str] = Field(default_factory=list)
    namespaceFiles: dict[str, Any] | None = None

    safe_to_rerun = False

    def script_text(self, ctx: TaskContext) -> str:
        raise NotImplementedError

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        workdir = ctx.create_workdir()
        for name, content in self.inputFiles.items():
            target = (workdir / str(ctx.render(name))).resolve()
            if workdir.resolve() not in target.parents:
                raise TaskFailure(f"inputFiles entry '{name}' points outside the working directory")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(str(ctx.render(content)))
        body = self.script_text(ctx)
        env = dict(ctx.services.task_env)
        env.update({str(k): str(ctx.render(v)) for k, v in self.env.items()})
        env["WORKING_DIR"] = str(workdir)
        argv = [*self.interpreter, body]
        isolation = ctx.services.isolation
        isolation.hand_over(workdir)
        return await run_process(ctx, argv, env, workdir, warning_on_stderr=self.warningOnStdErr,
                                 while_running=ctx.prepare_next_workdir,
                                 spawn_options=isolation.spawn_options())


class Commands(_ShellTask):
    """Runs `commands` one after another in one shell (`set -e` when `failFast`)."""

    commands: list[str]

    def script_text(self, ctx: TaskContext) -> str:
        lines = [str(ctx.render(c)) for c in [*self.beforeCommands, *self.commands]]
        prefix = "set -e\n" if self.failFast and self.interpreter[0].endswith("sh") else ""
        return prefix + "\n".join(lines)


class Script(_ShellTask):
    """Runs one multi-line `script`."""

    script: str

    def script_text(self, ctx: TaskContext) -> str:
        before = "\n".join(str(ctx.render(c)) for c in self.beforeCommands)
        body = str(ctx.render(self.script))
        return f"{before}\n{body}" if before else body


def _parse_vars(line: str, into: dict[str, Any]) -> bool:
    if not (line.startswith("::{") and line.rstrip().endswith("}::")):
        return False
    try:
        payload = json.loads(line.strip()[2:-2])
    except json.JSONDecodeError:
        return False
    if isinstance(payload, dict) and isinstance(payload.get("outputs"), dict):
        into.update(payload["outputs"])
        return True
    return False


class _Output:
    """One of the child's output pipes (the non-blocking read end) and its unfinished line."""

    __slots__ = ("fd", "level", "pending", "seen")

    def __init__(self, fd: int, level: str) -> None:
        self.fd = fd
        self.level = level
        self.pending = b""
        self.seen = False

    def feed(self, chunk: bytes, ctx: TaskContext, found_vars: dict[str, Any]) -> bool:
        """Log the complete lines in `chunk`; True if any line was logged."""
        pending = self.pending + chunk if self.pending else chunk
        if b"\n" not in pending:
            if len(pending) > 1 << 20:  # a 1 MiB line with no newline: flush it as is
                self.seen = True
                ctx.log_lines(self.level, [pending.decode("utf-8", "replace")])
                pending = b""
            self.pending = pending
            return False
        *complete, self.pending = pending.split(b"\n")
        lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in complete]
        if any(line.startswith("::{") for line in lines):
            lines = [line for line in lines if not _parse_vars(line, found_vars)]
        if not lines:
            return False
        self.seen = True
        ctx.log_lines(self.level, lines)
        return True

    def finish(self, ctx: TaskContext, found_vars: dict[str, Any]) -> None:
        """The pipe reached its end: log a last line that had no newline."""
        if self.pending:
            line = self.pending.decode("utf-8", "replace").rstrip("\r")
            self.pending = b""
            if not _parse_vars(line, found_vars):
                self.seen = True
                ctx.log_lines(self.level, [line])


def _small_pipe() -> tuple[int, int]:
    """(read end, write end): close-on-exec, the read end non-blocking and small."""
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, set_size, PIPE_BYTES)
    return read_fd, write_fd


def _pidfd_works() -> bool:
    opener = getattr(os, "pidfd_open", None)
    if opener is None:
        return False
    try:
        os.close(opener(os.getpid()))
    except OSError:  # an old kernel, or a sandbox that forbids the call
        return False
    return True


#: Whether child exits can be watched through a pidfd on the event loop (Linux 5.3+). If not,
#: asyncio's child watcher does it (a thread per child on Python 3.11).
USE_PIDFD = _pidfd_works()


class _Child:
    """A started child process, reaped without a watcher thread.

    Usually its output pipes reach their end as it exits, and one non-blocking `waitpid`
    then finds it gone; only if it is still running is it watched, through a pidfd on the
    event loop (or, should no file descriptor be left for that, by looking again every few
    milliseconds).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, popen: subprocess.Popen[bytes]) -> None:
        self.pid = popen.pid
        self._loop = loop
        self._popen = popen
        self._pidfd: int | None = None
        self._watched = False
        self._waiters: list[asyncio.Future[int]] = []

    @property
    def returncode(self) -> int | None:
        return self._popen.returncode

    def _poll(self) -> int | None:
        """The exit code, reaping the child if it has exited; None while it runs."""
        if self._popen.returncode is not None:
            return self._popen.returncode
        try:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # reaped behind our back: asyncio's convention
            code = 255
        else:
            if pid == 0:
                return None
            code = os.waitstatus_to_exitcode(status)
        # Popen now knows it is gone, so it never waits for or warns about it itself.
        self._popen.returncode = code
        if self._pidfd is not None:
            self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(code)
        self._waiters.clear()
        return code

    def _poll_later(self) -> None:
        if self._poll() is None:
            self._loop.call_later(POLL_S, self._poll_later)

    async def wait(self) -> int:
        code = self._poll()
        if code is not None:
            return code
        if not self._watched:
            self._watched = True
            try:
                # Safe: the pid cannot be reused before we reap it.
                self._pidfd = os.pidfd_open(self.pid)
            except OSError:
                self._loop.call_later(POLL_S, self._poll_later)
            else:
                self._loop.add_reader(self._pidfd, self._poll)  # readable once it has exited
        waiter: asyncio.Future[int] = self._loop.create_future()
        self._waiters.append(waiter)
        return await waiter


class _AsyncioChild:
    """The same face over an asyncio subprocess, where pidfds are not available."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.pid = proc.pid
        self._proc = proc

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode

    async def wait(self) -> int:
        return await self._proc.wait()


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _spawn(loop: asyncio.AbstractEventLoop, argv: list[str], env: dict[str, str],
                 cwd: Path, out_w: int, err_w: int,
                 options: dict[str, Any]) -> _Child | _AsyncioChild:
    if USE_PIDFD:
        popen = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=env, cwd=cwd,
            start_new_session=True, **options)
        return _Child(loop, popen)
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=env,
        cwd=cwd, start_new_session=True, **options)
    return _AsyncioChild(proc)


async def run_process(ctx: TaskContext, argv: list[str], env: dict[str, str], cwd: Path,
                      *, warning_on_stderr: bool = False,
                      while_running: Callable[[], None] | None = None,
                      spawn_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run argv, stream its output into the log, and return Kestra's shell outputs.

    The pipes are watched straight on the event loop (one wake-up future for both, no
    transports) and the child is reaped without a watcher thread: this is the per-task cost of
    every shell task. It ends once both pipes are closed and the process has exited. Lines are
    logged as they arrive; while too many lines wait to be stored, the pipes are left unread,
    so a chatty task waits in its own write(). `while_running` is called once the process has
    started: work that would otherwise make the next task wait. `spawn_options` go to
    `subprocess.Popen` (the user a task runs as).
    """
    loop = asyncio.get_running_loop()
    out_r, out_w = _small_pipe()
    err_r, err_w = _small_pipe()
    wake: asyncio.Future[None] | None = None

    def poke() -> None:
        if wake is not None and not wake.done():
            wake.set_result(None)

    try:
        child = await _spawn(loop, argv, env, cwd, out_w, err_w, spawn_options or {})
    except BaseException as exc:
        os.close(out_r)
        os.close(err_r)
        if isinstance(exc, OSError):
            raise TaskFailure(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
        raise
    finally:
        os.close(out_w)
        os.close(err_w)
    found_vars: dict[str, Any] = {}
    stdout, stderr = _Output(out_r, "INFO"), _Output(err_r, "WARN")
    streams = [stdout, stderr]
    for stream in streams:
        loop.add_reader(stream.fd, poke)
    try:
        if while_running is not None:
            while_running()
        while streams:
            wake = loop.create_future()
            await wake
            logged = False
            for stream in list(streams):
                try:
                    chunk = os.read(stream.fd, CHUNK)
                except BlockingIOError:
                    continue
                if chunk:
                    logged = stream.feed(chunk, ctx, found_vars) or logged
                    continue
                stream.finish(ctx, found_vars)
                loop.remove_reader(stream.fd)
                os.close(stream.fd)
                streams.remove(stream)
            if logged and streams and ctx.log_backlogged():
                for stream in streams:  # unread pipes would wake the loop over and over
                    loop.remove_reader(stream.fd)
                await ctx.log_room()
                for stream in streams:
                    loop.add_reader(stream.fd, poke)
        code = await child.wait()
    except asyncio.CancelledError:
        await _terminate(child)
        raise
    finally:
        for stream in streams:
            loop.remove_reader(stream.fd)
            os.close(stream.fd)
    outputs: dict[str, Any] = {"exitCode": code, "vars": found_vars}
    if code != 0:
        detail = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
        raise CommandFailed(code, f"command {detail}")
    if warning_on_stderr and stderr.seen:
        outputs["_warning"] = True
    return outputs


async def _terminate(proc: _Child | _AsyncioChild) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left after a short grace."""
    if proc.returncode is None:
        _kill_group(proc.pid, signal.SIGTERM)
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_S)
    # Grandchildren may ignore SIGTERM or outlive the shell: make sure the group is gone.
    _kill_group(proc.pid, signal.SIGKILL)
    if proc.returncode is None:
        try:
            await asyncio.wait_for(asyncio.shield(proc.wait()), KILL_GRACE_S)
        except (TimeoutError, asyncio.CancelledError):
            print(f"flowdeck: process {proc.pid} did not exit after SIGKILL", file=sys.stderr)


TASKS: dict[str, type[RunnableTask]] = {
    "io.kestra.plugin.scripts.shell.Commands": Commands,
    "io.kestra.plugin.scripts.shell.Script": Script,
    "io.kestra.core.tasks.scripts.Bash": Commands,
}
