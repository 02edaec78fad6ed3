"""Security check of a live `flowdeck serve`: schemathesis against its OpenAPI document, open and
with a token, then a 60 s mixed load. What `make check-security` runs (not part of CI; under 10
minutes on 2 cores).

    .venv/bin/python bench/security.py --schemathesis .venv-security/bin/schemathesis

1. **Fuzzing, open**: a `flowdeck serve` on loopback without credentials (auth off), seeded with
   a flow, a finished execution, a paused approval and a KV entry; schemathesis generates
   requests from `/openapi.json` for every documented operation (coverage, fuzzing and
   stateful phases, `--max-time` each run) with the `not_a_server_error` check. Any 5xx answer
   or network error (a dropped connection, a timeout) is a failure.
2. **Fuzzing, with a token**: the same server restarted after an admin token was created (so
   auth is on), schemathesis sending `Authorization: Bearer <token>`.
3. **Mixed load**: 50 clients for 60 s, each on its own keep-alive connection, picking at random
   among reading an execution, searching executions, listing and searching logs, reading a
   flow, validating a flow, creating an execution, `/ping`, an unknown id (404) and a malformed
   body (422). Reported: answers, 5xx, lost requests (no answer: a connection error or a 30 s
   timeout) and the p99 latency.

Exit status 0 when both fuzzing runs found no server error and no network error and the load
saw no 5xx and lost nothing; 1 otherwise. `--json` prints one JSON object of the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
API = "/api/v1/main"
LOAD_CLIENTS = 50
LOAD_SECONDS = 60.0
REQUEST_TIMEOUT = 30.0

FLOW = """\
id: hello
namespace: sec.check
inputs:
  - id: name
    type: STRING
    defaults: world
tasks:
  - id: say
    type: io.kestra.plugin.core.log.Log
    message: "hello {{ inputs.name }}"
"""
GATED = """\
id: gated
namespace: sec.check
tasks:
  - id: gate
    type: flowdeck.approval.Request
    title: Ship it?
"""


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT / "src"), env.get("PYTHONPATH"))
                                        if p)
    config = tmp / "config.toml"
    config.write_text("")
    env["FLOWDECK_CONFIG"] = str(config)
    return env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-3000:]
        except OSError:
            return ""


async def start(data_dir: Path, tmp: Path, name: str) -> Server:
    port = free_port()
    log = tmp / f"serve-{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), "serve",
             "--port", str(port)], env=child_env(tmp), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, cwd=tmp)
    server = Server(process, f"http://{HOST}:{port}", log)
    async with httpx.AsyncClient(base_url=server.url, timeout=2) as client:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{server.tail()}")
            with contextlib.suppress(httpx.TransportError):
                if (await client.get("/ping")).status_code == 200:
                    return server
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.tail()}")
            await asyncio.sleep(0.1)


async def stop(server: Server) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if server.process.poll() is not None:
                return
            await asyncio.sleep(0.05)
        server.process.kill()
        server.process.wait()


@dataclass
class Seeded:
    execution_id: str
    approval_id: str


async def seed(server: Server, headers: dict[str, str]) -> Seeded:
    yaml = {"Content-Type": "application/x-yaml", **headers}
    async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT,
                                 headers=headers) as client:
        for source in (FLOW, GATED):
            response = await client.post(f"{API}/flows", content=source, headers=yaml)
            if response.status_code not in (200, 409, 422):
                raise RuntimeError(f"seeding a flow answered {response.status_code}")
        done = (await client.post(f"{API}/executions/sec.check/hello",
                                  params={"wait": "true"})).json()
        gated = (await client.post(f"{API}/executions/sec.check/gated")).json()
        approval_id = ""
        for _ in range(100):
            pending = (await client.get(f"{API}/approvals",
                                        params={"executionId": gated["id"]})).json()
            if pending:
                approval_id = pending[0]["id"]
                break
            await asyncio.sleep(0.1)
        await client.put(f"{API}/namespaces/sec.check/kv/greeting", content='"hi"')
    return Seeded(done["id"], approval_id)


@dataclass
class Fuzzing:
    name: str
    exit_code: int
    cases: int = 0
    failures: list[str] = field(default_factory=list)
    network_errors: int = 0
    tool_errors: list[str] = field(default_factory=list)
    summary: str = ""

    @property
    def clean(self) -> bool:
        """No server error and no network error; schemathesis' own runtime errors are
        reported apart (they make its exit status 1 without any wrong answer)."""
        return not self.failures and not self.network_errors and (
            self.exit_code == 0 or bool(self.tool_errors))


def fuzz(schemathesis: str, server: Server, name: str, max_time: int, tmp: Path,
         headers: dict[str, str]) -> Fuzzing:
    command = [schemathesis, "run", f"{server.url}/openapi.json", "--checks",
               "not_a_server_error", "--max-time", str(max_time), "--workers", "2",
               "--request-timeout", str(REQUEST_TIMEOUT), "--suppress-health-check", "all",
               "--no-color", "--seed", "1"]
    for key, value in headers.items():
        command += ["--header", f"{key}: {value}"]
    progress(f"schemathesis ({name}) for {max_time} s ...")
    out = tmp / f"schemathesis-{name}.txt"
    with open(out, "wb") as sink:
        result = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT,
                                timeout=max_time + 300, cwd=tmp, check=False)
    text = out.read_text(errors="replace")
    found = Fuzzing(name, result.returncode)
    cases = re.search(r"(\d+) generated", text)
    found.cases = int(cases.group(1)) if cases else 0
    # Each failing operation is a "___ METHOD /path ___" line, then the kind of failure. A
    # "Runtime Error" is schemathesis failing in itself (no request was answered wrongly).
    for operation, kind in re.findall(r"^_+ (\w+ /\S+) _+\n(.+)$", text, re.MULTILINE):
        if kind.strip() == "Runtime Error":
            found.tool_errors.append(operation)
            continue
        found.failures.append(f"{operation} ({kind.strip()})")
        if kind.strip() == "Network Error":
            found.network_errors += 1
    summary = text[text.find("=== SUMMARY"):] if "=== SUMMARY" in text else text[-2000:]
    found.summary = summary.strip()
    progress(f"schemathesis ({name}): {found.cases} cases, exit {result.returncode}, "
             f"failing operations {found.failures or 'none'}"
             + (f", its own runtime errors on {found.tool_errors}" if found.tool_errors
                else ""))
    if not found.clean:
        print(text[-6000:], file=sys.stderr)
    return found


@dataclass
class LoadResult:
    answers: int = 0
    server_errors: int = 0
    lost: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)

    def p99(self) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return math.nan
        return values[max(0, math.ceil(0.99 * len(values)) - 1)]


def load_requests(seeded: Seeded) -> list[tuple[str, str, dict[str, Any]]]:
    yaml = {"headers": {"Content-Type": "application/x-yaml"}}
    return [
        ("GET", f"{API}/executions/{seeded.execution_id}", {}),
        ("GET", f"{API}/executions/search", {"params": {"size": "25"}}),
        ("GET", f"{API}/logs/{seeded.execution_id}", {}),
        ("GET", f"{API}/logs/search", {"params": {"q": "hello"}}),
        ("GET", f"{API}/flows/sec.check/hello", {}),
        ("POST", f"{API}/flows/validate", {"content": FLOW, **yaml}),
        ("POST", f"{API}/executions/sec.check/hello", {}),
        ("GET", "/ping", {}),
        ("GET", f"{API}/executions/00000000-0000-7000-8000-000000000000", {}),
        ("POST", f"{API}/executions/sec.check/hello",
         {"content": b"[" * 5000, "headers": {"Content-Type": "application/json"}}),
        ("GET", f"{API}/approvals", {}),
    ]


async def mixed_load(server: Server, seeded: Seeded, headers: dict[str, str],
                     seconds: float) -> LoadResult:
    result = LoadResult()
    requests = load_requests(seeded)
    end = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)

    async def client(index: int) -> None:
        pick = random.Random(index).choice
        async with httpx.AsyncClient(base_url=server.url, timeout=REQUEST_TIMEOUT,
                                     headers=headers, limits=limits) as http:
            while time.monotonic() < end:
                method, path, options = pick(requests)
                started = time.perf_counter()
                try:
                    response = await http.request(method, path, **options)
                except httpx.HTTPError:
                    result.lost += 1
                    continue
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                result.answers += 1
                result.statuses[response.status_code] = \
                    result.statuses.get(response.status_code, 0) + 1
                if response.status_code >= 500:
                    result.server_errors += 1

    progress(f"mixed load: {LOAD_CLIENTS} clients for {seconds:.0f} s ...")
    await asyncio.gather(*(client(i) for i in range(LOAD_CLIENTS)))
    progress(f"mixed load: {result.answers} answers {dict(sorted(result.statuses.items()))}, "
             f"{result.server_errors} 5xx, {result.lost} lost, p99 {result.p99():.1f} ms")
    return result


def create_token(data_dir: Path, tmp: Path) -> str:
    output = subprocess.run(
        [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), "token", "create",
         "--role", "admin", "--name", "security-check", "--json"], env=child_env(tmp),
        capture_output=True, check=True, timeout=120, cwd=tmp)
    doc = json.loads(output.stdout)
    secret = doc.get("secret") or doc.get("token")
    if not isinstance(secret, str):
        raise RuntimeError(f"token create printed no secret: {sorted(doc)}")
    return secret


async def run(schemathesis: str, max_time: int, load_seconds: float) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="flowdeck-security-") as name:
        tmp = Path(name)
        data_dir = tmp / "data"
        server = await start(data_dir, tmp, "open")
        try:
            await seed(server, {})
            open_run = fuzz(schemathesis, server, "open", max_time, tmp, {})
        finally:
            await stop(server)
        token = create_token(data_dir, tmp)
        bearer = {"Authorization": f"Bearer {token}"}
        server = await start(data_dir, tmp, "token")
        try:
            async with httpx.AsyncClient(base_url=server.url) as probe:
                if (await probe.get(f"{API}/flows/search")).status_code != 401:
                    raise RuntimeError("with a token created, auth should be on")
            seeded = await seed(server, bearer)
            token_run = fuzz(schemathesis, server, "token", max_time, tmp, bearer)
            load = await mixed_load(server, seeded, bearer, load_seconds)
            if server.process.poll() is not None:
                raise RuntimeError(f"the server died:\n{server.tail()}")
        finally:
            await stop(server)
    for run_ in (open_run, token_run):
        figures[f"schemathesis_{run_.name}_cases"] = run_.cases
        figures[f"schemathesis_{run_.name}_failing_operations"] = run_.failures
        figures[f"schemathesis_{run_.name}_network_errors"] = run_.network_errors
        figures[f"schemathesis_{run_.name}_tool_errors"] = run_.tool_errors
        figures[f"schemathesis_{run_.name}_exit"] = run_.exit_code
    figures.update({"load_answers": load.answers, "load_5xx": load.server_errors,
                    "load_lost": load.lost, "load_p99_ms": round(load.p99(), 1),
                    "load_statuses": {str(k): v for k, v in sorted(load.statuses.items())}})
    figures["clean"] = (open_run.clean and token_run.clean and load.server_errors == 0
                        and load.lost == 0)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schemathesis", default="schemathesis",
                        help="the schemathesis executable (its own venv)")
    parser.add_argument("--max-time", type=int, default=150,
                        help="seconds of fuzzing per run (default 150)")
    parser.add_argument("--load-seconds", type=float, default=LOAD_SECONDS)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    schemathesis = shutil.which(args.schemathesis)
    if schemathesis is None:
        parser.error(f"no schemathesis at {args.schemathesis!r} (make check-security "
                     "installs it in its own venv)")
    # Absolute: the fuzzing runs in a temporary directory.
    figures = asyncio.run(run(str(Path(schemathesis).absolute()), args.max_time,
                              args.load_seconds))
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:<40} {value}")
    return 0 if figures["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
