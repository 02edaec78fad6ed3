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
import sys
from pathlib import Path
from typing import Any

from pydantic import Field

from flowdeck.engine.tasks.base import RunnableTask, TaskContext, TaskFailure

CHUNK = 1 << 15
KILL_GRACE_S = 1.0
#: Pipe and reader buffer size. Small on purpose: a task that prints faster than lines can be
#: stored waits in its own write() instead of building a backlog that delays live followers.
PIPE_BYTES = 1 << 14


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
        workdir = ctx.workdir
        try:
            os.mkdir(workdir)
        except FileNotFoundError:
            workdir.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass
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
        return await run_process(ctx, argv, env, workdir, warning_on_stderr=self.warningOnStdErr)


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


async def _pump(stream: asyncio.StreamReader, level: str, ctx: TaskContext,
                found_vars: dict[str, Any], seen: list[bool]) -> None:
    pending = b""
    while True:
        chunk = await stream.read(CHUNK)
        if not chunk:
            break
        pending += chunk
        if b"\n" not in pending:
            if len(pending) > 1 << 20:  # a 1 MiB line with no newline: flush it as is
                ctx.log_lines(level, [pending.decode("utf-8", "replace")])
                pending = b""
            continue
        *complete, pending = pending.split(b"\n")
        lines = [raw.decode("utf-8", "replace").rstrip("\r") for raw in complete]
        if any(line.startswith("::{") for line in lines):
            lines = [line for line in lines if not _parse_vars(line, found_vars)]
        if lines:
            seen[0] = True
            ctx.log_lines(level, lines)
            await ctx.log_room()
    if pending:
        line = pending.decode("utf-8", "replace").rstrip("\r")
        if not _parse_vars(line, found_vars):
            seen[0] = True
            ctx.log_lines(level, [line])


def _small_pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    set_size = getattr(fcntl, "F_SETPIPE_SZ", None)  # Linux only
    if set_size is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(read_fd, set_size, PIPE_BYTES)
    return read_fd, write_fd


async def _reader(loop: asyncio.AbstractEventLoop, fd: int
                  ) -> tuple[asyncio.StreamReader, asyncio.BaseTransport]:
    reader = asyncio.StreamReader(limit=PIPE_BYTES, loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(fd, "rb", buffering=0))
    return reader, transport


def _kill_group(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def run_process(ctx: TaskContext, argv: list[str], env: dict[str, str], cwd: Path,
                      *, warning_on_stderr: bool = False) -> dict[str, Any]:
    """Run argv, stream its output into the log, and return Kestra's shell outputs."""
    loop = asyncio.get_running_loop()
    out_r, out_w = _small_pipe()
    err_r, err_w = _small_pipe()
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv, stdin=asyncio.subprocess.DEVNULL, stdout=out_w, stderr=err_w, env=env,
            cwd=str(cwd), start_new_session=True)
    except OSError as exc:
        for fd in (out_r, out_w, err_r, err_w):
            os.close(fd)
        raise TaskFailure(f"cannot start {argv[0]}: {exc.strerror or exc}") from None
    os.close(out_w)
    os.close(err_w)
    stdout, out_transport = await _reader(loop, out_r)
    stderr, err_transport = await _reader(loop, err_r)
    found_vars: dict[str, Any] = {}
    stderr_seen = [False]
    pumps = asyncio.gather(
        _pump(stdout, "INFO", ctx, found_vars, [False]),
        _pump(stderr, "WARN", ctx, found_vars, stderr_seen),
    )
    try:
        await pumps
        code = await proc.wait()
    except asyncio.CancelledError:
        await _terminate(proc)
        pumps.cancel()
        raise
    finally:
        out_transport.close()
        err_transport.close()
    outputs: dict[str, Any] = {"exitCode": code, "vars": found_vars}
    if code != 0:
        detail = f"was killed by signal {-code}" if code < 0 else f"failed with exit code {code}"
        raise TaskFailure(f"command {detail}")
    if warning_on_stderr and stderr_seen[0]:
        outputs["_warning"] = True
    return outputs


async def _terminate(proc: asyncio.subprocess.Process) -> None:
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
