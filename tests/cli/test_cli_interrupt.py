"""Ctrl-C while `flowdeck run --follow` waits: a real subprocess, a real SIGINT.

On a server the run goes on and the command says so (exit 4). On the embedded engine the run
lives in the command's process: without a terminal the command says exactly what becomes of
the run (exit 130); at a terminal (a pty) it asks, and keeps following or kills as answered.
"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from cli.test_cli_remote import clean_env, flowdeck_serve

SLEEPY = """\
id: sleepy
namespace: int.test
tasks:
  - id: hello
    type: io.kestra.plugin.core.log.Log
    message: started
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""


def flowdeck(*args: str) -> list[str]:
    return [sys.executable, "-m", "flowdeck.cli", *args]


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def stored_state(data_dir: Path, execution_id: str | None = None) -> tuple[str, str] | None:
    """(id, state) of the (only) execution stored in `data_dir`, read with plain sqlite3."""
    database = data_dir / "flowdeck.db"
    if not database.exists():
        return None
    try:
        with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT id, state FROM executions").fetchall()
    except sqlite3.OperationalError:  # the schema is being created
        return None
    rows = [r for r in rows if execution_id is None or r[0] == execution_id]
    return (rows[0][0], rows[0][1]) if rows else None


def running(data_dir: Path) -> str | None:
    """The execution's id once its Sleep task runs (its first task logged)."""
    row = stored_state(data_dir)
    if row is None or row[1] != "RUNNING":
        return None
    with closing(sqlite3.connect(f"file:{data_dir / 'flowdeck.db'}?mode=ro", uri=True)) as c:
        started = c.execute("SELECT COUNT(*) FROM logs WHERE message = 'started'").fetchone()
    return row[0] if started[0] else None


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    env = clean_env(tmp_path / "home")
    data_dir = tmp_path / "data"
    flow = tmp_path / "sleepy.yml"
    flow.write_text(SLEEPY, encoding="utf-8")
    subprocess.run(flowdeck("--data-dir", str(data_dir), "flow", "apply", str(flow)),
                   check=True, capture_output=True, env=env, timeout=30)
    yield data_dir, env


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def test_on_a_server_ctrl_c_detaches_and_the_run_goes_on(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    flow = tmp_path / "sleepy.yml"
    flow.write_text(SLEEPY, encoding="utf-8")
    with flowdeck_serve(tmp_path, env) as url:
        subprocess.run(flowdeck("--url", url, "flow", "apply", str(flow)), check=True,
                       capture_output=True, env=env, timeout=30)
        proc = subprocess.Popen(flowdeck("run", "int.test", "sleepy", "--follow", "--url", url),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                encoding="utf-8", env=env)
        try:
            assert proc.stdout is not None
            execution_id = re.fullmatch(r"execution (\S+) created\n",
                                        proc.stdout.readline()).group(1)  # type: ignore[union-attr]
            assert proc.stdout.readline().endswith(" INFO  hello  started\n")
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=20)
        finally:
            stop(proc)
        assert proc.returncode == 4, err
        assert out == ""
        assert err == (f"flowdeck: detached: execution {execution_id} goes on at {url}; follow "
                       f"it with `flowdeck logs {execution_id} -f --url {url}`, see it with "
                       f"`flowdeck executions show {execution_id} --url {url}`\n")
        shown = subprocess.run(flowdeck("--url", url, "executions", "show", execution_id,
                                        "--json"), capture_output=True, text=True, env=env,
                               timeout=30)
        assert json.loads(shown.stdout)["state"]["current"] == "RUNNING"  # it goes on
        killed = subprocess.run(flowdeck("--url", url, "executions", "kill", execution_id),
                                capture_output=True, text=True, env=env, timeout=60)
        assert killed.stdout == f"execution {execution_id} KILLED\n", killed.stderr


def test_on_the_embedded_engine_without_a_terminal_it_says_what_happens(
        embedded: tuple[Path, dict[str, str]]) -> None:
    data_dir, env = embedded
    proc = subprocess.Popen(flowdeck("--data-dir", str(data_dir), "run", "int.test", "sleepy",
                                     "--follow"),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env)
    try:
        execution_id = wait_for(lambda: running(data_dir), "the run to start")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        stop(proc)
    assert proc.returncode == 130, err
    assert err == (f"flowdeck: interrupted: execution {execution_id} stops with this process "
                   f"and stays RUNNING in {data_dir}; it continues when an engine next opens "
                   "the data dir (the deck, `flowdeck serve`, or a command that changes "
                   "something): a task cut short runs again, or fails if it may have had side "
                   "effects (shell commands, HTTP requests) unless it sets retryOnCrash: true\n")
    assert out.splitlines()[0] == f"execution {execution_id} created"
    assert stored_state(data_dir) == (execution_id, "RUNNING")
    # As said: the next command that changes something resumes it (here, to kill it).
    killed = subprocess.run(flowdeck("--data-dir", str(data_dir), "executions", "kill",
                                     execution_id[-8:]),
                            capture_output=True, text=True, env=env, timeout=60)
    assert killed.stdout == f"execution {execution_id} KILLED\n", killed.stderr


class Terminal:
    """A subprocess whose stdin, stdout and stderr are one pseudo-terminal."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.master, slave = pty.openpty()
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env,
                                     start_new_session=True)
        os.close(slave)
        self.seen = ""

    def read_until(self, text: str, times: int = 1, timeout: float = 20) -> str:
        """Everything the terminal showed, once `text` has appeared `times` times."""
        deadline = time.monotonic() + timeout
        while self.seen.count(text) < times:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never appeared in {self.seen!r}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    chunk = os.read(self.master, 4096)
                except OSError:  # the child exited and closed the terminal
                    chunk = b""
                if not chunk:
                    raise AssertionError(f"{text!r} never appeared in {self.seen!r}")
                self.seen += chunk.decode(errors="replace")
        return self.seen

    def type(self, text: str) -> None:
        os.write(self.master, text.encode())

    def close(self) -> None:
        stop(self.proc)
        os.close(self.master)


def test_at_a_terminal_it_asks_keeps_following_or_kills(
        embedded: tuple[Path, dict[str, str]]) -> None:
    data_dir, env = embedded
    terminal = Terminal(flowdeck("--data-dir", str(data_dir), "run", "int.test", "sleepy",
                                 "--follow"), env)
    try:
        execution_id = wait_for(lambda: running(data_dir), "the run to start")
        question = (f"execution {execution_id} is RUNNING in this process. [c] keep "
                    "following, [k] kill it, [s] stop here")
        terminal.proc.send_signal(signal.SIGINT)
        terminal.read_until(question)
        terminal.type("\n")  # the default: keep following
        terminal.read_until(f"following execution {execution_id} again")
        terminal.proc.send_signal(signal.SIGINT)  # asked again: the run never stopped
        terminal.read_until(question, times=2)
        assert stored_state(data_dir) == (execution_id, "RUNNING")
        terminal.type("k\n")
        assert terminal.proc.wait(30) == 1  # the run ended KILLED: not SUCCESS
        output = terminal.read_until(f"execution {execution_id} KILLED in ")
    finally:
        terminal.close()
    assert stored_state(data_dir) == (execution_id, "KILLED")
    assert "interrupted" not in output
