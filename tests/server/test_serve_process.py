"""`flowdeck serve`, `passwd` and `token` as real subprocesses, driven over HTTP with httpx.

Each server runs `python -m flowdeck.cli --data-dir D serve --port 0` with an environment that
cannot see the user's configuration, announces its URL on stdout, and is stopped with a real
signal. The durability case kills it with SIGKILL while executions run and checks, after a
restart on the same data dir, that every execution whose create call was answered is there and
none is left RUNNING.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, suppress
from pathlib import Path
from typing import Any

import argon2
import httpx
import pytest

API = "/api/v1/main"
URL_LINE = re.compile(r"^flowdeck serving (http://[^\s/]+:\d+)$")
CANARY = "canary-webhook-key-7d1e9a"
TERMINAL = {"SUCCESS", "WARNING", "FAILED", "KILLED", "CANCELLED"}

CRASHY = """\
id: crashy
namespace: durability
tasks:
  - id: nap
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT0.3S
  - id: shell
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo done
"""

HOOKED = f"""\
id: hooked
namespace: serve.test
triggers:
  - id: hook
    type: io.kestra.plugin.core.trigger.Webhook
    key: {CANARY}
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: hooked
"""


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FLOWDECK_", "ENV_"))}
    home = tmp_path / "home"
    env.update(TZ="UTC", HOME=str(home), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"), PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


class Served:
    """One `flowdeck serve` process: its URL, its stderr (a file, so it never blocks)."""

    def __init__(self, tmp_path: Path, data_dir: Path, *args: str,
                 env: dict[str, str] | None = None) -> None:
        self.stderr_path = tmp_path / f"serve-{time.monotonic_ns()}.err"
        self._stderr = self.stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), "serve",
             "--port", "0", *args],
            stdout=subprocess.PIPE, stderr=self._stderr, text=True, encoding="utf-8",
            env=clean_env(tmp_path, **(env or {})))
        self.url = ""
        self.lines: list[str] = []

    def wait_ready(self, timeout: float = 20) -> str:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            line = self.proc.stdout.readline()
            if not line:
                break
            self.lines.append(line.rstrip("\n"))
            match = URL_LINE.match(self.lines[-1])
            if match:
                self.url = match.group(1)
                return self.url
        raise AssertionError(f"no URL line; stdout {self.lines!r}; stderr {self.stderr()!r}")

    def stderr(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(encoding="utf-8")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Served]]:
    started: list[Served] = []
    yield started
    for served in started:
        served.close()


def serve(servers: list[Served], tmp_path: Path, data_dir: Path, *args: str,
          env: dict[str, str] | None = None) -> Served:
    served = Served(tmp_path, data_dir, *args, env=env)
    servers.append(served)
    return served


def cli(tmp_path: Path, *args: str, stdin: str | None = None,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowdeck.cli", "--data-dir",
                           str(tmp_path / "d"), *args], input=stdin, capture_output=True,
                          text=True, encoding="utf-8", timeout=60,
                          env=clean_env(tmp_path, **(env or {})))


def yaml_post(client: httpx.Client, source: str, **headers: str) -> httpx.Response:
    return client.post(f"{API}/flows", content=source,
                       headers={"Content-Type": "application/x-yaml", **headers})


def free_port() -> int:
    with closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- serve ---------------------------------------------------------------------------------------


def test_serve_announces_its_url_and_stops_cleanly_on_sigterm(
        tmp_path: Path, servers: list[Served]) -> None:
    served = serve(servers, tmp_path, tmp_path / "d", "--access-log")
    url = served.wait_ready()
    assert served.lines[-1] == f"flowdeck serving {url}"
    with httpx.Client(base_url=url, timeout=10) as client:
        ping = client.get("/ping")
        assert ping.text == "pong"
        assert "server" not in ping.headers  # server_header=False
        assert client.get("/api/v1/configs").json()["edition"] == "OSS"  # loopback: auth off
        assert yaml_post(client, HOOKED).status_code == 200
        hook = client.post(f"{API}/executions/webhook/serve.test/hooked/{CANARY}?x=1")
        assert hook.status_code == 200, hook.text
        execution_id = hook.json()["id"]
        # An event stream stays open (log follow never ends by itself) during the SIGTERM.
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1]))) as sock:
            sock.sendall(f"GET {API}/logs/{execution_id}/follow HTTP/1.1\r\nHost: x\r\n\r\n"
                         .encode())
            sock.settimeout(10)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
            code, took = served.stop(signal.SIGTERM)
            assert code == 0, served.stderr()
            assert took < 5, took
            rest = b""
            with suppress(OSError):
                while chunk := sock.recv(65536):
                    rest += chunk
            assert rest.endswith(b"0\r\n\r\n") or rest == b""  # the chunked body was closed
    err = served.stderr()
    assert "Traceback" not in err
    assert CANARY not in err
    assert f"{API}/executions/webhook/serve.test/hooked/***" in err  # redacted access log
    # Nothing listens there any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5)


def test_a_network_host_without_credentials_is_refused(tmp_path: Path,
                                                       servers: list[Served]) -> None:
    port = free_port()
    served = serve(servers, tmp_path, tmp_path / "d", "--host", "0.0.0.0", "--port",
                   str(port))
    code = served.proc.wait(20)
    assert code == 2
    assert served.proc.stdout is not None and served.proc.stdout.read() == ""
    err = served.stderr().strip().splitlines()
    assert len(err) == 1 and err[0].startswith("flowdeck: refusing to serve the API on 0.0.0.0")
    assert "flowdeck passwd" in err[0] and "flowdeck token create" in err[0]
    with closing(socket.socket()) as sock:  # nothing was left bound
        sock.bind(("0.0.0.0", port))


def test_a_network_host_with_credentials_requires_them(tmp_path: Path,
                                                       servers: list[Served]) -> None:
    password_hash = cli(tmp_path, "passwd", "--stdin", stdin="pa55word\n").stdout.strip()
    env = {"FLOWDECK_SERVER__BASIC_USERNAME": "ops@example.com",
           "FLOWDECK_SERVER__BASIC_PASSWORD_HASH": password_hash}
    served = serve(servers, tmp_path, tmp_path / "d", "--host", "0.0.0.0", env=env)
    url = served.wait_ready()
    match = re.fullmatch(r"http://0\.0\.0\.0:(\d+)", url)
    assert match, url
    # The URL names the bound host; talk to it over loopback.
    with httpx.Client(base_url=f"http://127.0.0.1:{match.group(1)}", timeout=10) as client:
        refused = client.get(f"{API}/flows/search")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="Kestra"'
        ok = client.get(f"{API}/flows/search", auth=("ops@example.com", "pa55word"))
        assert ok.status_code == 200
    assert served.stop()[0] == 0


def test_bad_server_settings_are_one_line_errors(tmp_path: Path) -> None:
    for args, env, expected in [
        (["serve", "--port", "70000"], {}, "--port 70000"),
        (["serve"], {"FLOWDECK_SERVER__BASIC_USERNAME": "a"}, "go together"),
        (["serve"], {"FLOWDECK_SERVER__BASIC_USERNAME": "a",
                     "FLOWDECK_SERVER__BASIC_PASSWORD_HASH": "hunter2"}, "argon2id hash"),
    ]:
        result = cli(tmp_path, *args, env=env)
        assert result.returncode == 2, result
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert "hunter2" not in result.stderr  # a pasted password is never echoed
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    with busy:
        result = cli(tmp_path, "serve", "--port", str(busy.getsockname()[1]))
        assert result.returncode == 2 and "cannot listen on" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr


def test_answered_creates_survive_sigkill_and_nothing_stays_running(
        tmp_path: Path, servers: list[Served]) -> None:
    data_dir = tmp_path / "d"
    first = serve(servers, tmp_path, data_dir)
    url = first.wait_ready()
    with httpx.Client(base_url=url, timeout=10) as client:
        assert yaml_post(client, CRASHY).status_code == 200

    answered: list[str] = []
    refused: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def fire() -> None:
        with httpx.Client(base_url=url, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(f"{API}/executions/durability/crashy")
                except httpx.HTTPError:
                    return  # the server died under this request: it was never answered
                with lock:
                    if response.status_code == 200:
                        answered.append(response.json()["id"])
                    else:
                        refused.append(response.text)

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(answered) < 24 and time.monotonic() < deadline:
        time.sleep(0.01)
    first.proc.send_signal(signal.SIGKILL)  # mid-stream: creates are still being fired
    first.proc.wait(10)
    stop.set()
    for thread in threads:
        thread.join(15)
    assert not refused, refused[:3]
    assert len(answered) >= 24
    assert len(set(answered)) == len(answered)

    # What the dead server left: every answered execution is stored, some unfinished.
    with closing(sqlite3.connect(data_dir / "flowdeck.db")) as conn:
        stored = dict(conn.execute("SELECT id, state FROM executions").fetchall())
    assert set(answered) <= set(stored)
    assert any(state not in TERMINAL for state in stored.values()), stored

    second = serve(servers, tmp_path, data_dir)
    url = second.wait_ready()
    with httpx.Client(base_url=url, timeout=10) as client:
        deadline = time.monotonic() + 30
        pending = set(answered)
        while pending and time.monotonic() < deadline:
            for execution_id in sorted(pending):
                response = client.get(f"{API}/executions/{execution_id}")
                assert response.status_code == 200, response.text
                if response.json()["state"]["current"] in TERMINAL:
                    pending.discard(execution_id)
            time.sleep(0.1)
        assert not pending, f"{len(pending)} executions never finished after the restart"
        # A create can commit and die before its answer: it is stored, recovered and run too.
        while True:
            unfinished = client.get(f"{API}/executions/search", params={
                "filters[state][IN]": "RUNNING,CREATED,QUEUED,RESTARTED,RETRYING,KILLING",
                "size": 100})
            assert unfinished.status_code == 200
            if unfinished.json()["total"] == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert unfinished.json()["total"] == 0, [
            (e["id"], e["state"]["current"], e["id"] in answered)
            for e in unfinished.json()["results"]]
        everything = client.get(f"{API}/executions/search", params={"size": 10_000}).json()
        assert everything["total"] == len(stored)
        assert all(e["state"]["current"] in TERMINAL for e in everything["results"])
    code, _ = second.stop(signal.SIGINT)
    assert code == 0
    for served in (first, second):
        assert "Traceback" not in served.stderr()


# -- passwd and token ----------------------------------------------------------------------------


def test_passwd_prints_an_owasp_argon2id_hash(tmp_path: Path) -> None:
    result = cli(tmp_path, "passwd", "--stdin", stdin="s3cret pass\n")
    assert result.returncode == 0 and result.stderr == "", result.stderr
    (encoded,) = result.stdout.splitlines()
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert argon2.PasswordHasher().verify(encoded, "s3cret pass")
    with pytest.raises(argon2.exceptions.VerifyMismatchError):
        argon2.PasswordHasher().verify(encoded, "s3cret pass\n")
    again = cli(tmp_path, "passwd", "--stdin", stdin="s3cret pass\n").stdout.strip()
    assert again != encoded  # salted
    empty = cli(tmp_path, "passwd", "--stdin", stdin="\n")
    assert empty.returncode == 2 and empty.stderr.startswith("flowdeck: ")
    assert "s3cret" not in result.stderr


def test_token_create_list_revoke(tmp_path: Path, servers: list[Served]) -> None:
    created = cli(tmp_path, "token", "create", "--role", "operator", "--name", "ci",
                  "--expires-in", "P30D", "--json")
    assert created.returncode == 0, created.stderr
    token: dict[str, Any] = json.loads(created.stdout)
    secret = token["token"]
    assert re.fullmatch(r"[0-9a-f]{64}", secret)
    assert token["role"] == "operator" and token["name"] == "ci"
    assert token["prefix"] == secret[:8] and token["status"] == "active"
    assert token["expiresAt"] and token["lastUsedAt"] is None

    human = cli(tmp_path, "token", "create", "--role", "viewer")
    assert human.returncode == 0
    viewer_secret = human.stdout.splitlines()[1]
    assert re.fullmatch(r"[0-9a-f]{64}", viewer_secret)

    listing = cli(tmp_path, "token", "list")
    assert listing.returncode == 0
    assert secret not in listing.stdout and viewer_secret not in listing.stdout
    assert secret[:8] + "…" in listing.stdout and "viewer token" in listing.stdout
    listed = json.loads(cli(tmp_path, "token", "list", "--json").stdout)
    assert [t["role"] for t in listed] == ["operator", "viewer"]
    assert all("token" not in t for t in listed)

    with closing(sqlite3.connect(tmp_path / "d" / "flowdeck.db")) as conn:
        dump = "\n".join(conn.iterdump())
    assert secret not in dump and viewer_secret not in dump

    # Tokens are managed while a server runs on the same data dir (no lock conflict), and
    # a token makes loopback require auth.
    served = serve(servers, tmp_path, tmp_path / "d")
    url = served.wait_ready()
    assert served.lines[-1] == f"flowdeck serving {url}"
    with httpx.Client(base_url=url, timeout=10) as client:
        assert client.get(f"{API}/flows/search").status_code == 401
        auth = {"Authorization": f"Bearer {secret}"}
        assert client.get(f"{API}/flows/search", headers=auth).status_code == 200
        assert yaml_post(client, CRASHY, Authorization=f"Bearer {viewer_secret}"
                         ).status_code == 403
        late = json.loads(cli(tmp_path, "token", "create", "--role", "admin", "--json").stdout)
        assert client.get(f"{API}/flows/search",
                          headers={"Authorization": f"Bearer {late['token']}"}
                          ).status_code == 200
        revoked = cli(tmp_path, "token", "revoke", token["id"])
        assert revoked.returncode == 0 and token["id"] in revoked.stdout
        assert client.get(f"{API}/flows/search", headers=auth).status_code == 401
    assert served.stop()[0] == 0
    after = {t["id"]: t for t in json.loads(cli(tmp_path, "token", "list", "--json").stdout)}
    assert after[token["id"]]["status"] == "revoked"
    assert after[token["id"]]["lastUsedAt"] is not None

    for args, expected in [
        (["token", "revoke", "no-such-id"], "no token 'no-such-id'"),
        (["token", "create", "--role", "operator", "--expires-in", "P1M"], "--expires-in"),
        (["token", "create", "--role", "operator", "--expires-in", "soon"], "--expires-in"),
    ]:
        result = cli(tmp_path, *args)
        assert result.returncode == 2 and expected in result.stderr, result.stderr
    bad_role = cli(tmp_path, "token", "create", "--role", "root")
    assert bad_role.returncode == 2 and "invalid choice" in bad_role.stderr


def test_serve_installs_the_staging_flows_and_names_the_keys_to_set(
        tmp_path: Path, servers: list[Served]) -> None:
    served = serve(servers, tmp_path, tmp_path / "d",
                   env={"ENV_STAGING_LIST_KEY": "list-key-123"})
    url = served.wait_ready()
    assert served.proc.stdout is not None
    note = served.proc.stdout.readline() + served.proc.stdout.readline()
    assert "ENV_STAGING_CLONE_KEY" in note and "ENV_STAGING_DELETE_KEY" in note
    assert "ENV_STAGING_LIST_KEY" not in note
    with httpx.Client(base_url=url, timeout=10) as client:
        for flow_id in ("clone-staging-api", "list-staging-environments",
                        "delete-staging-environment"):
            assert client.get(f"{API}/flows/dev.deployment/{flow_id}").status_code == 200
        listed = client.post(f"{API}/executions/webhook/dev.deployment/"
                             "list-staging-environments/list-key-123")
        assert listed.status_code == 200 and listed.json()["state"] == "CREATED"
        refused = client.post(f"{API}/executions/webhook/dev.deployment/clone-staging-api/x",
                              json={"client_name": "acme"})
        assert refused.status_code == 401
