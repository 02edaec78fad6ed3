"""The CLI with `--url`: the same commands against a real `flowdeck serve` subprocess.

One server (`python -m flowdeck.cli --data-dir D serve --port 0`) serves the whole module; each
command runs as its own subprocess with a data dir of its own that it must never touch (the
commands go over HTTP), and an environment that cannot see the user's configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

URL_LINE = re.compile(r"^flowdeck serving (http://[^\s/]+:\d+)$")

HELLO = """\
id: hello
namespace: remote.test
description: says hello
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
"""

FAILING = """\
id: failing
namespace: remote.test
tasks:
  - id: boom
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo about to fail
      - exit 3
"""

SLEEPY = """\
id: sleepy
namespace: remote.test
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT30S
"""

GATED = """\
id: gated
namespace: remote.test
tasks:
  - id: gate
    type: flowdeck.approval.Request
    title: Ship it?
  - id: after
    type: io.kestra.plugin.core.log.Log
    message: gate passed
"""


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWDECK_", "ENV_"))}
    env.update(TZ="UTC", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), USER="grace", LOGNAME="grace",
               PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Remote:
    """`flowdeck --data-dir <unused> --url URL ...` as a subprocess."""

    def __init__(self, root: Path, url: str) -> None:
        self.root = root
        self.url = url
        self.unused = root / "unused-data-dir"
        self.files = root / "flows"
        self.files.mkdir(exist_ok=True)

    def __call__(self, *args: str, url: str | None = None,
                 timeout: float = 30) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(self.unused),
                "--url", url or self.url, *args]
        return subprocess.run(argv, capture_output=True, text=True, encoding="utf-8",
                              timeout=timeout, env=clean_env(self.root / "home"))

    def ok(self, *args: str) -> str:
        result = self(*args)
        assert result.returncode == 0, (result.stdout, result.stderr)
        assert result.stderr == ""
        return result.stdout

    def flow_file(self, name: str, source: str) -> str:
        path = self.files / f"{name}.yml"
        path.write_text(source, encoding="utf-8")
        return str(path)


@contextlib.contextmanager
def flowdeck_serve(root: Path, env: dict[str, str]) -> Iterator[str]:
    """A real `flowdeck serve --port 0` subprocess on `root/server-data`; yields its URL."""
    stderr_path = root / "serve.err"
    with stderr_path.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(root / "server-data"),
             "serve", "--port", "0"],
            stdout=subprocess.PIPE, stderr=stderr, text=True, encoding="utf-8", env=env)
        try:
            assert proc.stdout is not None
            url, lines = "", []
            deadline = time.monotonic() + 20
            while not url and time.monotonic() < deadline:
                ready, _, _ = select.select([proc.stdout], [], [], 0.1)
                if not ready:
                    if proc.poll() is not None:
                        break
                    continue
                line = proc.stdout.readline()
                if not line:
                    break
                lines.append(line.rstrip("\n"))
                match = URL_LINE.match(lines[-1])
                if match:
                    url = match.group(1)
            assert url, (lines, stderr_path.read_text(encoding="utf-8"))
            yield url
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            if proc.stdout is not None:
                proc.stdout.close()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Remote]:
    root = tmp_path_factory.mktemp("remote")
    with flowdeck_serve(root, clean_env(root / "home")) as url:
        yield Remote(root, url)


def execution_id(stdout: str) -> str:
    match = re.search(r"^execution (\S+) created$", stdout, re.M)
    assert match, stdout
    return match.group(1)


def test_flow_apply_list_show_delete(remote: Remote) -> None:
    hello = remote.flow_file("hello", HELLO)
    assert remote.ok("flow", "apply", hello) == \
        "created   remote.test.hello (revision 1)\n"
    assert remote.ok("flow", "apply", hello) == \
        "unchanged remote.test.hello (revision 1)\n"
    changed = remote.flow_file("hello2", HELLO.replace("says hello", "says hello again"))
    assert remote.ok("flow", "apply", changed) == "updated   remote.test.hello (revision 2)\n"

    listing = remote.ok("flow", "list", "--namespace", "remote.test")
    assert listing.splitlines()[0].split() == ["NAMESPACE", "ID", "REVISION", "TRIGGERS",
                                               "DESCRIPTION"]
    assert re.search(r"^remote\.test\s+hello\s+2\s+-\s+says hello again$", listing, re.M)
    flows = json.loads(remote.ok("flow", "list", "--json"))
    assert {(f["namespace"], f["id"], f["revision"]) for f in flows} >= {
        ("remote.test", "hello", 2)}

    shown = remote.ok("flow", "show", "remote.test", "hello")
    assert shown.startswith("# remote.test.hello revision 2\n")
    assert "says hello again" in shown
    assert json.loads(remote.ok("flow", "show", "remote.test", "hello", "--json"))["id"] == \
        "hello"

    bad = remote.flow_file("bad", "id: bad\nnamespace: remote.test\ntasks: 3\n")
    refused = remote("flow", "apply", bad)
    assert refused.returncode == 2
    assert refused.stderr.startswith(f"flowdeck: {bad}: ") and refused.stderr.count("\n") == 1

    remote.ok("flow", "apply", remote.flow_file("gone", HELLO.replace("id: hello",
                                                                        "id: gone")))
    assert remote.ok("flow", "delete", "remote.test", "gone") == "deleted remote.test.gone\n"
    missing = remote("flow", "show", "remote.test", "gone")
    assert missing.returncode == 2 and missing.stderr.startswith("flowdeck: ")
    assert not remote.unused.exists()  # everything went over HTTP


def test_run_exit_codes_json_follow_and_executions(remote: Remote) -> None:
    remote.ok("flow", "apply", remote.flow_file("hello", HELLO),
              remote.flow_file("failing", FAILING))

    out = remote.ok("run", "remote.test", "hello", "-i", "name=ada", "-l", "team=ops",
                    "--wait")
    run_id = execution_id(out)
    assert re.search(rf"^execution {run_id} SUCCESS in \d+\.\ds$", out, re.M)

    as_json = remote("run", "remote.test", "hello", "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["state"]["current"] == "SUCCESS"

    followed = remote("run", "remote.test", "hello", "-i", "name=bob", "--follow")
    assert followed.returncode == 0, followed.stderr
    assert re.search(r"INFO\s+say\s+hello bob$", followed.stdout, re.M)

    failed = remote("run", "remote.test", "failing", "--follow")
    assert failed.returncode == 1, failed.stderr
    assert "about to fail" in failed.stdout
    assert re.search(r"^execution \S+ FAILED in ", failed.stdout, re.M)
    failed_id = execution_id(failed.stdout)

    unknown = remote("run", "remote.test", "no-such-flow")
    assert unknown.returncode == 2 and unknown.stderr.count("\n") == 1

    listing = remote.ok("executions", "list", "--namespace", "remote.test", "--limit", "50")
    assert listing.splitlines()[0].split() == ["ID", "STATE", "FLOW", "STARTED", "DURATION",
                                               "TASKS"]
    assert re.search(rf"^{run_id}\s+SUCCESS\s+remote\.test\.hello\s", listing, re.M)
    failed_only = json.loads(remote.ok("executions", "list", "--state", "failed", "--json"))
    assert {e["id"] for e in failed_only["results"]} == {failed_id}

    shown = remote.ok("executions", "show", run_id)
    assert re.search(r"^say\s+SUCCESS\s+1", shown, re.M)
    assert json.loads(remote.ok("executions", "show", run_id, "--json"))["id"] == run_id

    logs = remote.ok("logs", run_id)
    assert re.search(r"INFO\s+say\s+hello ada$", logs, re.M)
    follow = remote("logs", failed_id, "-f")
    assert follow.returncode == 1 and "about to fail" in follow.stdout

    restarted = remote("executions", "restart", failed_id)
    assert restarted.returncode == 1, restarted.stderr
    assert f"execution {failed_id} restarted" in restarted.stdout
    assert re.search(rf"^execution {failed_id} FAILED in ", restarted.stdout, re.M)


def test_kill_ends_the_run_and_a_second_kill_is_refused(remote: Remote) -> None:
    remote.ok("flow", "apply", remote.flow_file("sleepy", SLEEPY))
    argv = [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(remote.unused), "run",
            "remote.test", "sleepy", "--url", remote.url]  # --url after the command works too
    waiting = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               encoding="utf-8", env=clean_env(remote.root / "home"))
    try:
        assert waiting.stdout is not None
        run_id = execution_id(waiting.stdout.readline())
        deadline = time.monotonic() + 10
        while json.loads(remote.ok("executions", "show", run_id, "--json")
                         )["state"]["current"] != "RUNNING":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert remote.ok("executions", "kill", run_id) == f"execution {run_id} KILLED\n"
        out, err = waiting.communicate(timeout=15)
        assert waiting.returncode == 1, (out, err)
        assert re.search(rf"^execution {run_id} KILLED in ", out, re.M)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait(5)
    again = remote("executions", "kill", run_id)
    assert again.returncode == 2 and again.stderr.count("\n") == 1


def test_approvals_list_approve_reject_and_a_second_decision(remote: Remote) -> None:
    remote.ok("flow", "apply", remote.flow_file("gated", GATED))
    first = remote("run", "remote.test", "gated")
    assert first.returncode == 3, first.stderr  # it waits: not SUCCESS (yet)
    assert re.search(r"^execution \S+ PAUSED in ", first.stdout, re.M)
    first_id = execution_id(first.stdout)
    second_id = execution_id(remote("run", "remote.test", "gated").stdout)

    pending = json.loads(remote.ok("approvals", "list", "--json"))
    by_execution = {a["executionId"]: a["id"] for a in pending}
    assert set(by_execution) >= {first_id, second_id}
    table = remote.ok("approvals", "list")
    assert table.splitlines()[0].split() == ["ID", "STATUS", "FLOW", "TITLE", "WAITING"]
    assert re.search(rf"^{by_execution[first_id]}\s+pending\s+remote\.test\.gated\s+Ship it",
                     table, re.M)

    approve_id = by_execution[first_id]
    approved = remote.ok("approvals", "approve", approve_id, "--comment", "go")
    assert approved.splitlines() == [f"approval {approve_id} approved by grace",
                                     f"execution {first_id} is SUCCESS"]
    assert re.search(r"INFO\s+after\s+gate passed$", remote.ok("logs", first_id), re.M)

    reject_id = by_execution[second_id]
    rejected = remote.ok("approvals", "reject", reject_id, "--by", "linus")
    assert rejected.splitlines()[0] == f"approval {reject_id} rejected by linus"
    assert rejected.splitlines()[1].startswith(f"execution {second_id} is ")

    again = remote("approvals", "reject", approve_id, "--by", "mallory")
    assert again.returncode == 2 and again.stdout == ""
    assert again.stderr.count("\n") == 1 and "grace" in again.stderr
    everything = json.loads(remote.ok("approvals", "list", "--all", "--json"))
    assert {a["id"]: a["status"] for a in everything}[approve_id] == "approved"


def test_an_unreachable_server_is_one_line_naming_it(remote: Remote) -> None:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"  # nothing listens there once the socket is closed
    for args in (("flow", "list"), ("executions", "list"), ("approvals", "list")):
        result = remote(*args, url=url)
        assert result.returncode == 2, result
        assert result.stdout == ""
        assert result.stderr.startswith("flowdeck: ") and url in result.stderr
        assert result.stderr.count("\n") == 1
