"""API benchmark: a real flowdeck server in its own process, driven over loopback HTTP.

Run with the project's venv::

    .venv/bin/python bench/api.py                  # all phases, a readable table
    .venv/bin/python bench/api.py --json           # exactly one JSON object on stdout
    .venv/bin/python bench/api.py --only get,follow --quiet
    .venv/bin/python bench/api.py --only get --profile /tmp/prof   # py-spy the server

The server runs in a separate process: ``python -m flowdeck.cli --data-dir <tmp> serve
--port <port>`` when the CLI has a ``serve`` command, otherwise a small ``python -c`` launcher
that opens the engine and serves ``create_app(engine)`` with uvicorn (``--launcher`` forces
one). Before it starts, the bench opens the engine on the same data directory itself and seeds
it: the flows, one real execution per template (SUCCESS, FAILED and KILLED ones, in the
namespace ``bench.api`` and in ``other.team``), then 10,000 stored executions cloned from those
templates in one transaction (new ids, start dates spread over the past hours). Seeding is not
measured. The engine is closed again (releasing the data-dir lock) before the server opens it.

The load generator is not httpx: a minimal HTTP/1.1 keep-alive client over
``asyncio.open_connection`` (``Content-Length`` and chunked bodies), costing a few tens of
microseconds per request, so it is not what limits the figures on a small machine. Its CPU use
and the server's (from ``/proc``) are reported alongside. Latencies are taken per request with
``time.perf_counter``, from just before the request is written to the last body byte read;
percentiles are nearest-rank.

get_execution_p50_ms, get_execution_p99_ms (target p99 <= 20 ms), requests_per_s
(target >= 1,500/s)
    ``GET /api/v1/main/executions/{id}`` of random finished (seeded) executions from 50
    concurrent clients, each on its own keep-alive connection, sending its next request as soon
    as the previous answer is read (a closed loop). 2 s of warm-up, then 10 s measured;
    requests/s counts the answers completed in the measured window. In a closed loop the mean
    latency is 50 / throughput (Little's law): a p99 of 20 ms at 50 clients needs well over
    2,500 requests/s. Noted alongside: the server's CPU time per request (all its threads,
    from ``/proc``; unlike the rates, it hardly depends on what else the machine runs), and
    the same load on ``GET /ping`` for 4 s, the floor that uvicorn, the middleware and one
    top-level route cost before any routing into the API or any database read.

search_p99_ms
    ``GET /api/v1/main/executions/search?size=25&filters[state][IN]=SUCCESS,FAILED&
    filters[namespace][PREFIX]=bench.api`` over the 10,000 stored executions (about 4,000 of
    them match, counted and sorted by start date), one client, sequential: 5 warm-up requests,
    then 300 requests (or 8 s).

create_executions_per_s
    ``POST /api/v1/main/executions/bench.api/create`` (a one-Log-task flow, no body, no
    ``wait``) from 20 concurrent keep-alive clients for 4 s, after a short warm-up; answers
    with status 200 per second. The engine runs what is created meanwhile (its default of 5
    concurrent executions), as a real server would. Afterwards the bench waits for the backlog
    to finish and notes how long that took.

log_follow_p99_ms (target <= 100 ms)
    One shell task running this interpreter with ``-u``: after 1 s (so the follower is
    attached) it prints ``"<time.time_ns()> <i>"`` lines, paced at 2,000 lines/s for 5 s
    (10,000 lines, each one ``write(2)`` stamped just before the write). A client of
    ``GET /api/v1/main/logs/{id}/follow`` (server-sent events over chunked HTTP) stamps each
    event with ``time.time_ns()`` when the read that completed it returns; the delay is that
    stamp minus the line's own. The pacing keeps this a latency figure, not a backlog one: it
    covers the pipe, the engine's group commit (``synchronous=FULL``), the bus, the SSE
    encoder, uvicorn and loopback TCP. p99 over all lines; every line must arrive exactly once.

log_follow_rss_mb (target <= 200 MB)
    ``followrss``: one execution whose shell task prints 200,000 lines (~80 MB of log JSON),
    then 100 slow followers of ``GET /logs/{id}/follow``, each from its own loopback address
    with a 64 KiB receive buffer reading 4 KiB every 50 ms, for 10 s. The figure is the
    server's peak RSS (``/proc/<pid>/status``) minus its RSS before they connected; ``/ping``
    is timed every 50 ms meanwhile and every 10 ms in the 2 s after they disconnect.

ping_p99_ms_under_abuse (target <= 50 ms)
    ``abuse``: for 10 s, ``/ping`` every 10 ms while a client posts a YAML alias bomb to
    ``/flows/validate`` back to back (each must be a 4xx), another runs a regex-bomb template
    execution back to back (each must end FAILED), and 100 slow followers replay the
    200,000-line execution as above. p99 of the ``/ping`` latencies.

release_creates_per_s (target >= 500)
    ``POST /v1/releases`` (the forge API) from 50 concurrent keep-alive clients, each with a
    Bearer token of its own (50 users, so the 1,000-requests-a-minute limit per user is not
    what is measured), each create a new commit of one project, for 4 s after 1 s of warm-up:
    answers with status 201 per second. Afterwards the bench reads the project's releases
    back and checks they are numbered 1..N without a gap or a duplicate.

run_overhead_ms (target <= 5)
    A pipeline run of a flow of 4 trivial Log tasks (``POST /v1/runs``) against the same flow
    run directly (``POST /api/v1/main/executions/pipelines.bench/shop``), one client,
    alternating, 30 of each after 5 of each as warm-up: each from the request to the `end`
    event of the execution's follow stream (``GET .../executions/{id}/follow``, the same for
    both). The figure is the difference of the medians.

These two run against a server of their own (a data dir with the 50 tokens and the pipeline
flow, so authentication is on), started only when they are selected.

The phases run in the order get, search, follow, create, followrss, abuse, flows, bulk,
flowctl, webhook, public, then release and pipeline (create leaves a backlog that the engine
drains while the hostile ones run; flowctl drains its own before it ends; bulk relabels seeded
executions; public leaves its 1,000 or so agents waiting for approval).

``--profile DIR`` records each phase of the server with ``py-spy record --pid --gil`` (only the
thread holding the GIL is sampled: the server's Python time; raw collapsed stacks in
``DIR/api-<phase>.txt``) and prints the heaviest frames to stderr; it slows the server a
little, so take figures without it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import hmac
import json
import math
import os
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from array import array
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx

try:
    from flowdeck.engine.engine import Engine, EngineSettings
except ImportError:  # a bare checkout: use the sources next to this script
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from flowdeck.engine.engine import Engine, EngineSettings

from flowdeck.core.timefmt import format_instant

SRC = Path(__file__).resolve().parents[1] / "src"

HOST = "127.0.0.1"
API = "/api/v1/main"
SEED_EXECUTIONS = 10_000
GET_CLIENTS = 50
GET_WARMUP_S = 2.0
GET_SECONDS = 10.0
PING_SECONDS = 4.0
SEARCH_WARMUP = 5
SEARCH_REQUESTS = 300
SEARCH_MAX_S = 8.0
CREATE_CLIENTS = 20
CREATE_SECONDS = 4.0
FOLLOW_RATE = 2_000
FOLLOW_SECONDS = 5
FOLLOW_LINES = FOLLOW_RATE * FOLLOW_SECONDS
FOLLOW_START_DELAY_S = 1.0
FLOWCTL = "/api/v1"
FLOWCTL_CLIENTS = 50
FLOWCTL_SUBMIT_SECONDS = 4.0
FLOWCTL_GET_WARMUP_S = 1.0
FLOWCTL_GET_SECONDS = 5.0
FLOWCTL_WORKFLOW = json.dumps({
    "name": "bench", "description": "one true command",
    "tasks": [{"name": "noop", "type": "generic", "payload": {"command": "true"}}],
}).encode()
FLOWS_WARMUP = 5
FLOWS_REQUESTS = 200
BULK_IDS = 1_000
SERVER_START_TIMEOUT = 30.0
TIMEOUT_S = 120.0
PUBLIC = "/api/v1/public"
AGENT = "workflow_bfsi_marketing_template"
PUBLIC_CLIENTS = 50
PUBLIC_WARMUP_S = 2.0
PUBLIC_SECONDS = 10.0
PUBLIC_BURST = 8
PUBLIC_USAGE_LIMIT = 1_000_000
WEBHOOK_CLIENTS = 10
WEBHOOK_ROUNDS = 4
WEBHOOK_SECRET = "bench-webhook-secret"

SEARCH_PARAMS = {"size": "25", "filters[state][IN]": "SUCCESS,FAILED",
                 "filters[namespace][PREFIX]": "bench.api"}

VERBOSE = True


def progress(message: str) -> None:
    if VERBOSE:
        print(f"  .. {message}", file=sys.stderr, flush=True)


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


# -- a minimal HTTP/1.1 keep-alive client -------------------------------------------------------


class HttpError(RuntimeError):
    pass


class RawConnection:
    """One keep-alive HTTP/1.1 connection; one request at a time, no pipelining.

    Just enough HTTP for this bench: a request line, a Host header, an optional body with its
    Content-Length; answers framed by Content-Length or chunked transfer encoding (or, failing
    both, by the connection closing).
    """

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.host_header = f"{host}:{port}"
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        #: Header lines sent with every request (e.g. a Bearer token), each ending in CRLF.
        self.extra_headers = ""

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.reader = self.writer = None

    def send_head(self, method: str, path: str, body: bytes = b"",
                  headers: str = "") -> None:
        if self.writer is None:
            raise HttpError("not connected")
        length = f"Content-Length: {len(body)}\r\n" if body or method != "GET" else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
                          f"{length}{headers}\r\n".encode("latin-1") + body)

    async def read_head(self) -> tuple[int, dict[bytes, bytes]]:
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw[:-4].split(b"\r\n")
        status = int(lines[0][9:12])
        fields: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip()
        return status, fields

    async def request(self, method: str, path: str, body: bytes = b"",
                      headers: str = "") -> tuple[int, bytes]:
        """(status, body) of one request; reconnects first if the server closed on us.
        `headers`: extra header lines, each ending in CRLF."""
        if self.writer is None:
            await self.connect()
        self.send_head(method, path, body, self.extra_headers + headers)
        reader = self.reader
        assert reader is not None
        status, fields = await self.read_head()
        length = fields.get(b"content-length")
        if length is not None:
            data = await reader.readexactly(int(length))
        elif fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
                if size == 0:
                    while await reader.readuntil(b"\r\n") != b"\r\n":
                        pass  # trailers
                    break
                parts.append((await reader.readexactly(size + 2))[:-2])
            data = b"".join(parts)
        elif status in (204, 304) or 100 <= status < 200:
            data = b""
        else:
            data = await reader.read()
            self.close()
            return status, data
        if fields.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, data


class Dechunker:
    """Incremental decoder of a chunked HTTP body."""

    def __init__(self) -> None:
        self.buffer = b""
        self.need: int | None = None  # bytes of chunk data (+ CRLF) still expected
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self.buffer += data
        out = []
        while not self.done:
            if self.need is None:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    break
                size = int(self.buffer[:end].split(b";", 1)[0], 16)
                self.buffer = self.buffer[end + 2:]
                if size == 0:
                    self.done = True
                    break
                self.need = size + 2
            if len(self.buffer) < self.need:
                break
            out.append(self.buffer[:self.need - 2])
            self.buffer = self.buffer[self.need:]
            self.need = None
        return b"".join(out)


# -- the server process -----------------------------------------------------------------------

# Opens the engine and serves the app, as `flowdeck serve` would; SIGTERM stops uvicorn, then
# the engine closes cleanly.
LAUNCHER = textwrap.dedent("""\
    import asyncio, sys
    from pathlib import Path
    import uvicorn
    from flowdeck.engine.engine import Engine, EngineSettings
    from flowdeck.server.app import ServerOptions, create_app

    async def main(data_dir, port):
        engine = await Engine.open(EngineSettings(data_dir=Path(data_dir), scheduler=False))
        try:
            app = create_app(engine, ServerOptions(host="127.0.0.1", port=port))
            config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                    access_log=False, lifespan="off")
            await uvicorn.Server(config).serve()
        finally:
            await engine.close()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
""")


#: The server's whole config: the defaults, but FlowCtl's per-address rate limit raised so 50
#: clients on loopback are measured rather than refused (the limiter still runs).
SERVER_CONFIG = "[flowctl]\nrate_limit_per_minute = 1000000\n"


def child_env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), env.get("PYTHONPATH")) if p)
    # An empty config file: the developer's own config.toml must not shape the server.
    config = tmp / "config.toml"
    config.write_text(SERVER_CONFIG)
    env["FLOWDECK_CONFIG"] = str(config)
    # The webhook phase's receiver listens on loopback, which the outbox refuses by default.
    env["FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS"] = "true"
    return env


def has_serve_command(env: dict[str, str]) -> bool:
    result = subprocess.run([sys.executable, "-m", "flowdeck.cli", "serve", "--help"],
                            env=env, capture_output=True, timeout=60)
    return result.returncode == 0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    how: str
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (every thread) so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def start_server(data_dir: Path, tmp: Path, launcher: str) -> Server:
    env = child_env(tmp)
    port = free_port()
    if launcher == "auto":
        launcher = "serve" if has_serve_command(env) else "uvicorn"
    if launcher == "serve":
        command = [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), "serve",
                   "--port", str(port)]
    else:
        command = [sys.executable, "-c", LAUNCHER, str(data_dir), str(port)]
    log_path = tmp / "server.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, cwd=tmp)
    server = Server(process, port, launcher, log_path)
    try:
        await wait_until_up(server)
    except BaseException:
        await stop_server(server)
        raise
    return server


async def wait_until_up(server: Server) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    async with httpx.AsyncClient(base_url=server.url, timeout=2.0) as client:
        while True:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited ({server.process.returncode}):\n"
                                   f"{server.log_tail()}")
            with contextlib.suppress(httpx.TransportError):
                response = await client.get("/ping")
                if response.status_code == 200:
                    return
                raise RuntimeError(f"/ping answered {response.status_code}: {response.text}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{server.log_tail()}")
            await asyncio.sleep(0.05)


async def stop_server(server: Server) -> None:
    process = server.process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        for _ in range(300):
            if process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        else:
            process.kill()
            process.wait()


# -- seeding (through the engine, before the server starts) -----------------------------------


def flow_source(namespace: str, flow_id: str, tasks: list[str]) -> str:
    lines = [f"id: {flow_id}", f"namespace: {namespace}", "tasks:"]
    for i, body in enumerate(tasks):
        lines.append(f"  - id: t{i:03d}")
        lines.extend("    " + part for part in body.strip().splitlines())
    return "\n".join(lines) + "\n"


LOG_TASK = "type: io.kestra.plugin.core.log.Log\nmessage: hello from {{ flow.id }}"
FAIL_TASK = "type: io.kestra.plugin.core.execution.Fail\nerrorMessage: failed on purpose"

# One write(2) per line, stamped just before the write, paced at FOLLOW_RATE lines/s.
CHATTY_PROGRAM = textwrap.dedent(f"""\
    import sys, time
    time.sleep({FOLLOW_START_DELAY_S})
    write, clock, now, sleep = sys.stdout.write, time.time_ns, time.perf_counter, time.sleep
    start = now()
    for i in range({FOLLOW_LINES}):
        delay = start + i / {FOLLOW_RATE} - now()
        if delay > 0:
            sleep(delay)
        write(f"{{clock()}} {{i}}\\n")
""")


def shell_task(command: str) -> str:
    return ("type: io.kestra.plugin.scripts.shell.Commands\n"
            f"commands:\n  - {json.dumps(command)}")


def flow_sources() -> list[str]:
    chatty = f"{shlex.quote(sys.executable)} -u -c {shlex.quote(CHATTY_PROGRAM)}"
    return [
        flow_source("bench.api", "ok", [LOG_TASK]),
        flow_source("bench.api", "fail", [LOG_TASK, FAIL_TASK]),
        flow_source("other.team", "ok", [LOG_TASK]),
        flow_source("other.team", "fail", [LOG_TASK, FAIL_TASK]),
        flow_source("bench.api", "create", [LOG_TASK]),
        flow_source("bench.api", "chatty", [shell_task(chatty)]),
        *abuse_flow_sources(),
    ]


#: (namespace, flow, final state): one real execution each, then cloned round-robin.
TEMPLATES = [
    ("bench.api", "ok", "SUCCESS"),
    ("bench.api", "fail", "FAILED"),
    ("bench.api", "ok", "KILLED"),
    ("other.team", "ok", "SUCCESS"),
    ("other.team", "fail", "FAILED"),
]


@dataclass
class Seeded:
    ids: list[str]
    search_total: int  # how many stored executions the search matches


async def seed(data_dir: Path, count: int) -> Seeded:
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))
    try:
        for source in flow_sources():
            await engine.apply_flow(source)
        templates = []
        for namespace, flow_id, final in TEMPLATES:
            created = await engine.create_execution(namespace, flow_id)
            done = await engine.wait_until_terminal(created.id, TIMEOUT_S)
            if final != done.state.current:
                done = await engine.change_status(done.id, final)
            templates.append(done)
        columns = [r[1] for r in await engine.store.fetchall("PRAGMA table_info(executions)")]
        exprs = {"id": "?", "doc": "replace(doc, ?, ?)", "start_date": "?", "end_date": "?",
                 "trigger_key": "NULL"}
        sql = (f"INSERT INTO executions ({', '.join(columns)}) SELECT "
               f"{', '.join(exprs.get(c, c) for c in columns)} FROM executions WHERE id = ?")
        now = datetime.now(UTC)
        rows, ids = [], []
        matching = 0
        for i in range(count):
            template = templates[i % len(templates)]
            new_id = engine.new_id()
            ids.append(new_id)
            if template.namespace == "bench.api" and template.state.current in ("SUCCESS",
                                                                                "FAILED"):
                matching += 1
            start = now - timedelta(seconds=6 * (count - i))
            start_text = format_instant(start)
            end_text = format_instant(start + timedelta(seconds=1))
            params: list[Any] = []
            for column in columns:
                if column == "id":
                    params.append(new_id)
                elif column == "doc":
                    params.extend([template.id, new_id])
                elif column == "start_date":
                    params.append(start_text)
                elif column == "end_date":
                    params.append(end_text)
            params.append(template.id)
            rows.append(params)

        async def insert(conn: Any) -> None:
            await conn.executemany(sql, rows)

        await engine.store.run(insert)
        for template in templates:
            if template.namespace == "bench.api" and template.state.current in ("SUCCESS",
                                                                                "FAILED"):
                matching += 1
        row = await engine.store.fetchone("SELECT COUNT(*) FROM executions")
        progress(f"seeded {count} executions ({row[0] if row else '?'} stored)")
        return Seeded(ids, matching)
    finally:
        await engine.close()


# -- phases -----------------------------------------------------------------------------------


@dataclass
class Context:
    server: Server
    seeded: Seeded


async def open_connections(server: Server, count: int) -> list[RawConnection]:
    conns = [RawConnection(HOST, server.port) for _ in range(count)]
    await asyncio.gather(*(c.connect() for c in conns))
    return conns


@dataclass
class Load:
    """What a closed-loop run measured, over its measured window only."""

    latencies_ms: list[float]  # ascending; requests that started and ended in the window
    completed: int  # answers that arrived in the window
    answers: int  # every answer, warm-up and stragglers included
    seconds: float
    client_cpu_s: float  # this process
    server_cpu_s: float  # the server process, every thread

    @property
    def rate(self) -> float:
        return self.completed / self.seconds

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_s * 1e6 / max(1, self.completed)

    def summary(self) -> str:
        lat = self.latencies_ms
        return (f"{len(lat)} requests measured; p50 {percentile(lat, 50):.1f} ms, p90 "
                f"{percentile(lat, 90):.1f} ms, p99 {percentile(lat, 99):.1f} ms, max "
                f"{lat[-1]:.1f} ms; {self.rate:,.0f} req/s; server CPU "
                f"{self.server_cpu_s / self.seconds:.0%} of a core "
                f"({self.server_cpu_us_per_request:.0f} us per request), load generator "
                f"{self.client_cpu_s / self.seconds:.0%}")


async def closed_loop(server: Server, conns: list[RawConnection], method: str,
                      next_path: Callable[[], str], warmup_s: float, seconds: float,
                      expect: int = 200, body: bytes = b"") -> Load:
    """Every connection requests as soon as its previous answer is in, for warm-up + seconds."""
    perf = time.perf_counter
    start = perf() + warmup_s
    end = start + seconds
    latencies = array("d")
    completed = 0
    statuses: Counter[int] = Counter()

    async def client(conn: RawConnection) -> None:
        nonlocal completed
        while True:
            t0 = perf()
            if t0 >= end:
                return
            status, _ = await conn.request(method, next_path(), body)
            t1 = perf()
            statuses[status] += 1
            if start <= t1 <= end:
                completed += 1
                if t0 >= start:
                    latencies.append((t1 - t0) * 1000)

    async def cpu_marks() -> tuple[float, float]:
        await asyncio.sleep(max(0.0, start - perf()))
        client0, server0 = time.process_time(), server.cpu_seconds()
        await asyncio.sleep(max(0.0, end - perf()))
        return time.process_time() - client0, server.cpu_seconds() - server0

    marks = asyncio.create_task(cpu_marks())
    await asyncio.gather(*(client(c) for c in conns))
    client_cpu, server_cpu = await marks
    bad = {s: n for s, n in statuses.items() if s != expect}
    if bad:
        raise RuntimeError(f"unexpected statuses {bad} (of {sum(statuses.values())} answers)")
    return Load(sorted(latencies), completed, sum(statuses.values()), seconds, client_cpu,
                server_cpu)


async def phase_get(ctx: Context) -> dict[str, float]:
    ids = ctx.seeded.ids
    conns = await open_connections(ctx.server, GET_CLIENTS)
    try:
        status, body = await conns[0].request("GET", f"{API}/executions/{ids[0]}")
        doc = json.loads(body)
        if status != 200 or doc.get("id") != ids[0]:
            raise RuntimeError(f"GET execution answered {status}: {body[:300]!r}")
        choice = random.Random(1).choice
        paths = [f"{API}/executions/{choice(ids)}" for _ in range(100_003)]
        position = 0

        def next_path() -> str:
            nonlocal position
            position += 1
            return paths[position % len(paths)]

        load = await closed_loop(ctx.server, conns, "GET", next_path, GET_WARMUP_S,
                                 GET_SECONDS)
        # The floor: the same load on the app's cheapest route (no database, no routers).
        ping = await closed_loop(ctx.server, conns, "GET", lambda: "/ping", 1.0, PING_SECONDS)
    finally:
        for conn in conns:
            conn.close()
    latencies = load.latencies_ms
    progress(f"get ({len(body)} bytes each): {load.summary()}")
    progress(f"get /ping, the floor: {ping.summary()}")
    return {"get_execution_p50_ms": percentile(latencies, 50),
            "get_execution_p99_ms": percentile(latencies, 99),
            "requests_per_s": load.rate,
            "_get_mean_ms": statistics.fmean(latencies),
            "_get_server_cpu": load.server_cpu_s / load.seconds * 100,
            "_get_server_us": load.server_cpu_us_per_request,
            "_get_client_cpu": load.client_cpu_s / load.seconds * 100,
            "_ping_per_s": ping.rate,
            "_ping_server_us": ping.server_cpu_us_per_request}


async def phase_search(ctx: Context) -> dict[str, float]:
    path = f"{API}/executions/search?{urlencode(SEARCH_PARAMS)}"
    conn = RawConnection(HOST, ctx.server.port)
    await conn.connect()
    try:
        status, body = await conn.request("GET", path)
        answer = json.loads(body)
        if status != 200 or len(answer.get("results", [])) != 25:
            raise RuntimeError(f"search answered {status}: {body[:300]!r}")
        if answer.get("total") != ctx.seeded.search_total:
            raise RuntimeError(f"search: total {answer.get('total')}, expected "
                               f"{ctx.seeded.search_total}")
        for _ in range(SEARCH_WARMUP):
            await conn.request("GET", path)
        latencies: list[float] = []
        started = time.perf_counter()
        while len(latencies) < SEARCH_REQUESTS and time.perf_counter() - started < SEARCH_MAX_S:
            t0 = time.perf_counter()
            status, body = await conn.request("GET", path)
            latencies.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"search answered {status}: {body[:300]!r}")
    finally:
        conn.close()
    latencies.sort()
    progress(f"search: {len(latencies)} requests, {len(body)} bytes each, total "
             f"{answer['total']}; p50 {percentile(latencies, 50):.1f} ms, p99 "
             f"{percentile(latencies, 99):.1f} ms, max {latencies[-1]:.1f} ms")
    return {"search_p99_ms": percentile(latencies, 99),
            "_search_p50_ms": percentile(latencies, 50)}


async def pending_of(client: httpx.AsyncClient, flow_id: str) -> int:
    response = await client.get(f"{API}/executions/search", params={
        "size": "1", "filters[namespace][EQUALS]": "bench.api",
        "filters[flowId][EQUALS]": flow_id,
        "filters[state][IN]": "CREATED,QUEUED,RUNNING,RESTARTED,RETRYING,PAUSED,KILLING"})
    response.raise_for_status()
    return int(response.json()["total"])


async def phase_create(ctx: Context) -> dict[str, float]:
    path = f"{API}/executions/bench.api/create"
    conns = await open_connections(ctx.server, CREATE_CLIENTS)
    try:
        status, body = await conns[0].request("POST", path)
        if status != 200 or json.loads(body).get("state", {}).get("current") != "CREATED":
            raise RuntimeError(f"create answered {status}: {body[:300]!r}")
        await asyncio.gather(*(c.request("POST", path) for c in conns))  # warm-up
        async with httpx.AsyncClient(base_url=ctx.server.url, timeout=30) as client:
            async with asyncio.timeout(TIMEOUT_S):
                while await pending_of(client, "create"):
                    await asyncio.sleep(0.1)
            began = time.perf_counter()
            load = await closed_loop(ctx.server, conns, "POST", lambda: path, 0.0,
                                     CREATE_SECONDS)
            async with asyncio.timeout(TIMEOUT_S):
                while await pending_of(client, "create"):
                    await asyncio.sleep(0.1)
            drained = time.perf_counter() - began
            created = load.answers
    finally:
        for conn in conns:
            conn.close()
    progress(f"create: {load.summary()}; all {created} finished {drained:.1f} s after the "
             f"first create ({created / drained:.0f}/s)")
    return {"create_executions_per_s": load.rate,
            "_create_p99_ms": percentile(load.latencies_ms, 99),
            "_create_server_us": load.server_cpu_us_per_request,
            "_create_finished_per_s": created / drained}


async def follow_stream(conn: RawConnection, path: str, lines: int, deadline: float
                        ) -> tuple[array[int], list[int], int]:
    """Read the SSE stream until `lines` bench lines are in.

    Returns each line's delay in ns (receive stamp minus the line's own), the line numbers in
    the order received, and how many other lines (not the bench's) came along.
    """
    conn.send_head("GET", path, headers="Accept: text/event-stream\r\n")
    status, fields = await conn.read_head()
    if status != 200:
        raise RuntimeError(f"log follow answered {status}")
    if fields.get(b"transfer-encoding", b"").lower() != b"chunked":
        raise RuntimeError(f"log follow is not chunked: {fields}")
    reader = conn.reader
    assert reader is not None
    dechunk = Dechunker()
    latencies = array("q")
    numbers: list[int] = []
    others = 0
    pending = b""
    clock = time.time_ns
    pattern = re.compile(r"(\d+) (\d+)")
    while len(numbers) < lines:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        try:
            data = await asyncio.wait_for(reader.read(1 << 16), remaining)
        except TimeoutError:
            break
        now = clock()
        if not data:
            break
        pending += dechunk.feed(data)
        *events, pending = pending.split(b"\n\n")
        for event in events:
            at = event.find(b"data: ")
            if at < 0:
                continue  # a `: ping`
            message = json.loads(event[at + 6:].split(b"\n", 1)[0])["message"]
            match = pattern.fullmatch(message)
            if match is None:
                others += 1
                continue
            latencies.append(now - int(match.group(1)))
            numbers.append(int(match.group(2)))
    return latencies, numbers, others


async def phase_follow(ctx: Context) -> dict[str, float]:
    async with httpx.AsyncClient(base_url=ctx.server.url, timeout=30) as client:
        response = await client.post(f"{API}/executions/bench.api/chatty")
        response.raise_for_status()
        execution_id = response.json()["id"]
        conn = RawConnection(HOST, ctx.server.port)
        await conn.connect()
        try:
            deadline = time.monotonic() + FOLLOW_START_DELAY_S + FOLLOW_SECONDS + 60
            latencies_ns, numbers, others = await follow_stream(
                conn, f"{API}/logs/{execution_id}/follow", FOLLOW_LINES, deadline)
        finally:
            conn.close()
        async with asyncio.timeout(TIMEOUT_S):
            while True:
                state = (await client.get(f"{API}/executions/{execution_id}")).json()["state"]
                if state["current"] not in ("CREATED", "RUNNING"):
                    break
                await asyncio.sleep(0.1)
    if state["current"] != "SUCCESS":
        raise RuntimeError(f"the chatty execution ended {state['current']}")
    if numbers != list(range(FOLLOW_LINES)):
        raise RuntimeError(f"log follow: {len(numbers)} lines received of {FOLLOW_LINES} "
                           f"({len(set(numbers))} distinct), or out of order")
    latencies = sorted(ns / 1e6 for ns in latencies_ns)
    progress(f"follow: {len(numbers)} lines (+{others} other) ; p50 "
             f"{percentile(latencies, 50):.1f} ms, p90 {percentile(latencies, 90):.1f} ms, "
             f"p99 {percentile(latencies, 99):.1f} ms, max {latencies[-1]:.1f} ms")
    return {"log_follow_p99_ms": percentile(latencies, 99),
            "_follow_p50_ms": percentile(latencies, 50),
            "_follow_max_ms": latencies[-1]}


# -- abuse: long logs, slow followers, bombs --------------------------------------------------

LONG_LOG_LINES = 200_000
SLOW_FOLLOWERS = 100
SLOW_READ_BYTES = 4096
SLOW_READ_EVERY_S = 0.05
SLOW_RCVBUF = 64 * 1024
RSS_SECONDS = 10.0
ABUSE_SECONDS = 10.0
PING_EVERY_S = 0.01
AFTER_DISCONNECT_S = 2.0
# One line a print, ~200 characters each: 200,000 of them are ~80 MB of Kestra log JSON.
LONG_LOG_PROGRAM = (f"import sys\nw = sys.stdout.write\nfor i in range({LONG_LOG_LINES}):\n"
                    "    w(f'{i:06d} ' + 'x' * 193 + '\\n')\n")
YAML_BOMB = "\n".join(
    ["id: bomb", "namespace: bench.abuse", "variables:",
     '  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
     *(f"  {n}: &{n} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]"
       for p, n in zip("abcdefgh", "bcdefghi", strict=True)),
     "tasks:", "  - id: t", "    type: io.kestra.plugin.core.log.Log",
     "    message: '{{ vars.i }}'"]) + "\n"
REGEX_BOMB_TASK = ("type: io.kestra.plugin.core.log.Log\n"
                   "message: \"{{ ('" + "a" * 40 + "!') | replace('(a|aa)+$', 'x', "
                   "regexp=true) }}\"")


def abuse_flow_sources() -> list[str]:
    program = f"{shlex.quote(sys.executable)} -c {shlex.quote(LONG_LOG_PROGRAM)}"
    return [flow_source("bench.abuse", "long-log", [shell_task(program)]),
            flow_source("bench.abuse", "regex-bomb", [REGEX_BOMB_TASK])]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return math.nan


async def long_log_execution(ctx: Context) -> str:
    """An execution of LONG_LOG_LINES stored lines (made once, then reused)."""
    known = getattr(ctx, "long_log_id", None)
    if known:
        return str(known)
    async with httpx.AsyncClient(base_url=ctx.server.url, timeout=TIMEOUT_S) as client:
        response = await client.post(f"{API}/executions/bench.abuse/long-log",
                                     params={"wait": "true"})
        response.raise_for_status()
        doc = response.json()
    if doc["state"]["current"] != "SUCCESS":
        raise RuntimeError(f"the long-log execution ended {doc['state']['current']}")
    ctx.long_log_id = doc["id"]  # type: ignore[attr-defined]
    return str(doc["id"])


async def slow_follower(port: int, path: str, source: str, stop: asyncio.Event,
                        received: list[int]) -> None:
    """A follower from its own loopback address that reads 4 KiB every 50 ms, with a small
    receive buffer: the server has to hold back (or keep) what it cannot send."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SLOW_RCVBUF)
    sock.setblocking(False)
    sock.bind((source, 0))
    await loop.sock_connect(sock, (HOST, port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=SLOW_READ_BYTES)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     "Accept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"a follower got {head[:60]!r}")
        while not stop.is_set():
            data = await reader.read(SLOW_READ_BYTES)
            if not data:
                break
            received[0] += len(data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SLOW_READ_EVERY_S)
    finally:
        writer.close()


async def ping_loop(server: Server, stop: asyncio.Event, every: float) -> list[float]:
    """GET /ping every `every` seconds on one keep-alive connection; latencies in ms."""
    conn = RawConnection(HOST, server.port)
    await conn.connect()
    latencies: list[float] = []
    try:
        while not stop.is_set():
            started = time.perf_counter()
            status, _ = await conn.request("GET", "/ping")
            if status != 200:
                raise RuntimeError(f"/ping answered {status}")
            latencies.append((time.perf_counter() - started) * 1000)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
    finally:
        conn.close()
    return sorted(latencies)


@contextlib.asynccontextmanager
async def slow_followers(ctx: Context, execution_id: str
                         ) -> Any:
    stop = asyncio.Event()
    received = [0]
    path = f"{API}/logs/{execution_id}/follow"
    tasks = [asyncio.create_task(slow_follower(ctx.server.port, path, f"127.0.1.{i + 1}",
                                               stop, received))
             for i in range(SLOW_FOLLOWERS)]
    try:
        yield received
    finally:
        stop.set()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise RuntimeError(f"{len(errors)} followers failed: {errors[0]!r}")


async def phase_followrss(ctx: Context) -> dict[str, float]:
    execution_id = await long_log_execution(ctx)
    pid = ctx.server.process.pid
    await asyncio.sleep(1.0)
    baseline = rss_mb(pid)
    peak = baseline
    stop_ping = asyncio.Event()
    pings = asyncio.create_task(ping_loop(ctx.server, stop_ping, 0.05))
    async with slow_followers(ctx, execution_id) as received:
        end = time.monotonic() + RSS_SECONDS
        while time.monotonic() < end:
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.1)
    stop_ping.set()
    during = await pings
    # Right after they disconnect: is the server there at once?
    stop_after = asyncio.Event()
    after_task = asyncio.create_task(ping_loop(ctx.server, stop_after, 0.01))
    await asyncio.sleep(AFTER_DISCONNECT_S)
    stop_after.set()
    after = await after_task
    peak = max(peak, rss_mb(pid))
    progress(f"followrss: RSS {baseline:.0f} MB -> peak {peak:.0f} MB with {SLOW_FOLLOWERS} "
             f"slow followers of {LONG_LOG_LINES:,} lines ({received[0] / 1e6:.1f} MB read); "
             f"/ping p99 {percentile(during, 99):.1f} ms during, max "
             f"{after[-1]:.1f} ms in the {AFTER_DISCONNECT_S:.0f} s after")
    return {"log_follow_rss_mb": peak - baseline,
            "_followrss_ping_p99_ms": percentile(during, 99),
            "_followrss_after_max_ms": after[-1]}


async def yaml_bombs(server: Server, stop: asyncio.Event, outcomes: Counter[int]) -> None:
    conn = RawConnection(HOST, server.port)
    await conn.connect()
    try:
        while not stop.is_set():
            status, _ = await conn.request("POST", f"{API}/flows/validate", YAML_BOMB.encode())
            outcomes[status] += 1
    finally:
        conn.close()


async def regex_bombs(server: Server, stop: asyncio.Event, outcomes: Counter[str]) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT_S) as client:
        while not stop.is_set():
            response = await client.post(f"{API}/executions/bench.abuse/regex-bomb",
                                         params={"wait": "true"})
            outcomes[response.json()["state"]["current"]] += 1


async def phase_abuse(ctx: Context) -> dict[str, float]:
    execution_id = await long_log_execution(ctx)
    stop = asyncio.Event()
    yaml_out: Counter[int] = Counter()
    regex_out: Counter[str] = Counter()
    async with slow_followers(ctx, execution_id):
        bombs = [asyncio.create_task(yaml_bombs(ctx.server, stop, yaml_out)),
                 asyncio.create_task(regex_bombs(ctx.server, stop, regex_out))]
        stop_ping = asyncio.Event()
        pings = asyncio.create_task(ping_loop(ctx.server, stop_ping, PING_EVERY_S))
        await asyncio.sleep(ABUSE_SECONDS)
        stop_ping.set()
        stop.set()
        latencies = await pings
        await asyncio.gather(*bombs)
    if any(not 400 <= status < 500 for status in yaml_out) or set(regex_out) != {"FAILED"}:
        raise RuntimeError(f"bombs answered {dict(yaml_out)} / {dict(regex_out)}")
    progress(f"abuse: /ping p50 {percentile(latencies, 50):.1f} ms, p99 "
             f"{percentile(latencies, 99):.1f} ms, max {latencies[-1]:.1f} ms over "
             f"{len(latencies)} pings; YAML bombs answered {dict(yaml_out)}, "
             f"{sum(regex_out.values())} regex bombs (FAILED)")
    return {"ping_p99_ms_under_abuse": percentile(latencies, 99),
            "_abuse_ping_max_ms": latencies[-1],
            "_abuse_yaml_bombs": float(sum(yaml_out.values())),
            "_abuse_regex_bombs": float(sum(regex_out.values()))}


# -- the forge API (its own server: tokens, so authentication is on) ---------------------------

FORGE_CLIENTS = 50
RELEASE_WARMUP_S = 1.0
RELEASE_SECONDS = 4.0
RUN_WARMUP = 5
RUN_SAMPLES = 30
PIPELINE_FLOW = flow_source("pipelines.bench", "shop", [LOG_TASK] * 4)


@dataclass
class ForgeServer:
    server: Server
    tokens: list[str]

    def auth(self, i: int = 0) -> str:
        return f"Authorization: Bearer {self.tokens[i]}\r\n"


@contextlib.asynccontextmanager
async def forge_server(tmp: Path, launcher: str) -> AsyncIterator[ForgeServer]:
    """A server on a data dir of its own: the pipeline flow and a token per client."""
    from flowdeck.engine.keys import TokenStore

    data_dir = tmp / "forge-data"
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))
    try:
        await engine.apply_flow(PIPELINE_FLOW)
        store = TokenStore(engine.store, engine.clock)
        tokens = [(await store.create("operator", f"bench-{i}"))[1]
                  for i in range(FORGE_CLIENTS)]
    finally:
        await engine.close()
    server = await start_server(data_dir, tmp, launcher)
    try:
        yield ForgeServer(server, tokens)
    finally:
        await stop_server(server)


async def phase_release(tmp: Path, launcher: str) -> dict[str, float]:
    async with forge_server(tmp, launcher) as forge:
        conns = await open_connections(forge.server, FORGE_CLIENTS)
        for i, conn in enumerate(conns):
            conn.extra_headers = forge.auth(i) + "Content-Type: application/json\r\n"
        counter = iter(range(1, 10**9))

        def body() -> bytes:
            return json.dumps({"repository": "bench/shop", "project": "api",
                               "commit_sha": f"{next(counter):040x}"}).encode()

        perf = time.perf_counter
        start = perf() + RELEASE_WARMUP_S
        end = start + RELEASE_SECONDS
        latencies = array("d")
        completed = 0
        statuses: Counter[int] = Counter()

        async def client(conn: RawConnection) -> None:
            nonlocal completed
            while (t0 := perf()) < end:
                status, _ = await conn.request("POST", "/v1/releases", body())
                t1 = perf()
                statuses[status] += 1
                if start <= t1 <= end:
                    completed += 1
                    if t0 >= start:
                        latencies.append((t1 - t0) * 1000)

        server0 = 0.0

        async def mark() -> float:
            nonlocal server0
            await asyncio.sleep(max(0.0, start - perf()))
            server0 = forge.server.cpu_seconds()
            await asyncio.sleep(max(0.0, end - perf()))
            return forge.server.cpu_seconds() - server0

        try:
            marks = asyncio.create_task(mark())
            await asyncio.gather(*(client(c) for c in conns))
            server_cpu = await marks
        finally:
            for conn in conns:
                conn.close()
        if set(statuses) != {201}:
            raise RuntimeError(f"release creates answered {dict(statuses)}")
        created = sum(statuses.values())
        await check_numbering(forge, created)
    rate = completed / RELEASE_SECONDS
    ordered = sorted(latencies)
    progress(f"release: {created} created, {rate:,.0f}/s measured; p50 "
             f"{percentile(ordered, 50):.1f} ms, p99 {percentile(ordered, 99):.1f} ms; "
             f"server CPU {server_cpu / RELEASE_SECONDS:.0%} of a core; numbered 1..{created} "
             "without a gap")
    return {"release_creates_per_s": rate, "_release_p99_ms": percentile(ordered, 99),
            "_release_server_us": server_cpu * 1e6 / max(1, completed)}


async def check_numbering(forge: ForgeServer, created: int) -> None:
    """The project's releases are numbered 1..created: no gap, no duplicate."""
    numbers: list[int] = []
    async with httpx.AsyncClient(base_url=forge.server.url, timeout=60,
                                 headers={"Authorization": f"Bearer {forge.tokens[0]}"}
                                 ) as client:
        offset = 0
        while True:
            page = (await client.get("/v1/releases/bench/shop/api", params={
                "limit": "1000", "offset": str(offset)})).json()
            numbers.extend(r["release_number"] for r in page["releases"])
            offset += len(page["releases"])
            if not page["releases"] or offset >= page["total"]:
                break
    if sorted(numbers) != list(range(1, created + 1)):
        raise RuntimeError(f"release numbers are not 1..{created}: {len(numbers)} read, "
                           f"{len(set(numbers))} distinct, max {max(numbers, default=0)}")


async def until_end(client: httpx.AsyncClient, execution_id: str) -> None:
    """Read the execution's follow stream until its `end` event."""
    async with client.stream("GET", f"{API}/executions/{execution_id}/follow") as stream:
        if stream.status_code != 200:
            raise RuntimeError(f"follow answered {stream.status_code}")
        async for line in stream.aiter_lines():
            if line == "id: end":
                return
    raise RuntimeError(f"the follow of {execution_id} ended without an end event")


async def phase_pipeline(tmp: Path, launcher: str) -> dict[str, float]:
    async with forge_server(tmp, launcher) as forge:
        headers = {"Authorization": f"Bearer {forge.tokens[0]}"}
        async with httpx.AsyncClient(base_url=forge.server.url, timeout=60,
                                     headers=headers) as client:
            async def pipeline(n: int) -> float:
                t0 = time.perf_counter()
                answer = await client.post("/v1/runs", json={
                    "repository": "bench/shop", "branch": "main",
                    "commit_sha": f"{n:040x}", "trigger_type": "push"})
                if answer.status_code != 201:
                    raise RuntimeError(f"POST /v1/runs answered {answer.status_code}: "
                                       f"{answer.text[:300]}")
                await until_end(client, answer.json()["id"])
                return (time.perf_counter() - t0) * 1000

            async def direct(n: int) -> float:
                t0 = time.perf_counter()
                answer = await client.post(f"{API}/executions/pipelines.bench/shop")
                if answer.status_code != 200:
                    raise RuntimeError(f"create answered {answer.status_code}: "
                                       f"{answer.text[:300]}")
                await until_end(client, answer.json()["id"])
                return (time.perf_counter() - t0) * 1000

            runs: list[float] = []
            flows: list[float] = []
            for n in range(RUN_WARMUP + RUN_SAMPLES):
                a, b = await pipeline(n), await direct(n)
                if n >= RUN_WARMUP:
                    runs.append(a)
                    flows.append(b)
    run_ms, flow_ms = statistics.median(runs), statistics.median(flows)
    progress(f"pipeline: a run of 4 Log tasks {run_ms:.1f} ms, the flow directly "
             f"{flow_ms:.1f} ms (medians of {RUN_SAMPLES}); overhead {run_ms - flow_ms:.1f} ms")
    return {"run_overhead_ms": run_ms - flow_ms, "_run_ms": run_ms, "_flow_ms": flow_ms}
async def flowctl_unfinished(client: httpx.AsyncClient) -> int:
    """Workflows still pending or running."""
    total = 0
    for status in ("pending", "running"):
        response = await client.get(f"{FLOWCTL}/workflows",
                                    params={"status": status, "limit": "1"})
        response.raise_for_status()
        total += int(response.json()["total"])
    return total


async def flowctl_ids(client: httpx.AsyncClient) -> list[str]:
    """Every workflow's id, paging 100 at a time."""
    ids: list[str] = []
    page = 1
    while True:
        response = await client.get(f"{FLOWCTL}/workflows",
                                    params={"page": str(page), "limit": "100"})
        response.raise_for_status()
        answer = response.json()
        ids.extend(w["id"] for w in answer["workflows"])
        if page >= answer["total_pages"]:
            return ids
        page += 1


async def phase_flowctl(ctx: Context) -> dict[str, float]:
    path = f"{FLOWCTL}/workflows"
    conns = await open_connections(ctx.server, FLOWCTL_CLIENTS)
    try:
        status, body = await conns[0].request("POST", path, FLOWCTL_WORKFLOW)
        if status != 201 or json.loads(body).get("status") != "pending":
            raise RuntimeError(f"FlowCtl submit answered {status}: {body[:300]!r}")
        await asyncio.gather(*(c.request("POST", path, FLOWCTL_WORKFLOW) for c in conns))
        async with httpx.AsyncClient(base_url=ctx.server.url, timeout=30) as client:
            async with asyncio.timeout(TIMEOUT_S):
                while await flowctl_unfinished(client):
                    await asyncio.sleep(0.1)
            began = time.perf_counter()
            submit = await closed_loop(ctx.server, conns, "POST", lambda: path, 0.0,
                                       FLOWCTL_SUBMIT_SECONDS, expect=201,
                                       body=FLOWCTL_WORKFLOW)
            async with asyncio.timeout(TIMEOUT_S):
                while await flowctl_unfinished(client):
                    await asyncio.sleep(0.1)
            drained = time.perf_counter() - began
            ids = await flowctl_ids(client)
            metrics = (await client.get(f"{FLOWCTL}/metrics")).json()
        if metrics["workflows"]["completed"] != len(ids):
            raise RuntimeError(f"FlowCtl: {len(ids)} workflows, metrics {metrics['workflows']}")
        status, body = await conns[0].request("GET", f"{path}/{ids[0]}")
        if status != 200 or json.loads(body).get("status") != "completed":
            raise RuntimeError(f"FlowCtl GET workflow answered {status}: {body[:300]!r}")
        choice = random.Random(2).choice
        paths = [f"{path}/{choice(ids)}" for _ in range(100_003)]
        position = 0

        def next_path() -> str:
            nonlocal position
            position += 1
            return paths[position % len(paths)]

        get = await closed_loop(ctx.server, conns, "GET", next_path, FLOWCTL_GET_WARMUP_S,
                                FLOWCTL_GET_SECONDS)
    finally:
        for conn in conns:
            conn.close()
    progress(f"flowctl submit: {submit.summary()}; all {submit.answers} workflows completed "
             f"{drained:.1f} s after the first submit ({submit.answers / drained:.0f}/s)")
    progress(f"flowctl GET workflow ({len(body)} bytes each, {len(ids)} workflows): "
             f"{get.summary()}")
    return {"flowctl_submit_p99_ms": percentile(submit.latencies_ms, 99),
            "flowctl_status_p99_ms": percentile(get.latencies_ms, 99),
            "_flowctl_submit_p50_ms": percentile(submit.latencies_ms, 50),
            "_flowctl_submit_per_s": submit.rate,
            "_flowctl_finished_per_s": submit.answers / drained,
            "_flowctl_status_p50_ms": percentile(get.latencies_ms, 50),
            "_flowctl_status_per_s": get.rate,
            "_flowctl_status_server_us": get.server_cpu_us_per_request}


# -- profiling --------------------------------------------------------------------------------


# -- the public agent API and its webhooks -----------------------------------------------------


def public_body() -> bytes:
    """One execute request as the spec shows it (one customer row)."""
    row = {"customerId": "CUST001", "name": "John Doe", "phone": "+918610560986",
           "email": "john@example.com", "city": "Mumbai", "income_bracket": "75000-100000",
           "age": "32", "credit_score": "750"}
    return json.dumps({"input": {"csvData": [row]},
                       "description": "bench"}).encode()


def public_headers(secret: str) -> str:
    return f"Authorization: Bearer {secret}\r\nContent-Type: application/json\r\n"


def needs_serve(ctx: Context, phase: str) -> None:
    if ctx.server.how != "serve":
        raise RuntimeError(f"the {phase} phase needs `flowdeck serve` (it installs the bundled "
                           "agent and reads FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS)")


async def public_keys(ctx: Context, count: int, prefix: str, **fields: Any) -> list[str]:
    """`count` new public API keys (their secrets), made through flowdeck's admin routes."""
    secrets: list[str] = []
    async with httpx.AsyncClient(base_url=ctx.server.url, timeout=30) as client:
        for i in range(count):
            answer = await client.post("/api/v1/api-keys", json={
                "name": f"{prefix}-{i}", "usageLimit": PUBLIC_USAGE_LIMIT, **fields})
            if answer.status_code != 201:
                raise RuntimeError(f"creating an API key answered {answer.status_code}: "
                                   f"{answer.text[:300]}")
            secrets.append(answer.json()["key"])
    return secrets


async def phase_public(ctx: Context) -> dict[str, float]:
    needs_serve(ctx, "public")
    secrets = await public_keys(ctx, PUBLIC_CLIENTS, "bench-public")
    path = f"{PUBLIC}/agents/{AGENT}/execute"
    body = public_body()
    conns = await open_connections(ctx.server, PUBLIC_CLIENTS)
    perf = time.perf_counter
    start = perf() + PUBLIC_WARMUP_S
    end = start + PUBLIC_SECONDS
    latencies: list[float] = []
    burst: list[float] = []
    statuses: Counter[int] = Counter()
    burst_statuses: Counter[int] = Counter()
    offsets = random.Random(2)

    async def client(conn: RawConnection, secret: str) -> None:
        """Open loop at the rate the key's bucket refills (1/s), then one burst."""
        headers = public_headers(secret)
        due = start - PUBLIC_WARMUP_S + offsets.random()
        while due < end:
            await asyncio.sleep(max(0.0, due - perf()))
            t0 = perf()
            status, answer = await conn.request("POST", path, body, headers)
            t1 = perf()
            statuses[status] += 1
            if status != 202:
                raise RuntimeError(f"execute answered {status}: {answer[:300]!r}")
            if t0 >= start:
                latencies.append((t1 - t0) * 1000)
            due += 1.0
        for _ in range(PUBLIC_BURST):
            t0 = perf()
            status, _ = await conn.request("POST", path, body, headers)
            burst_statuses[status] += 1
            if status == 202:
                burst.append((perf() - t0) * 1000)

    gc.collect()
    gc.disable()  # the load generator's own collections would show up as server latency
    try:
        cpu0 = ctx.server.cpu_seconds()
        await asyncio.gather(*(client(c, s) for c, s in zip(conns, secrets, strict=True)))
        server_cpu = ctx.server.cpu_seconds() - cpu0
    finally:
        gc.enable()
        for conn in conns:
            conn.close()
    latencies.sort()
    burst.sort()
    total = sum(statuses.values()) + sum(burst_statuses.values())
    progress(f"public execute: {len(latencies)} measured at {PUBLIC_CLIENTS}/s; p50 "
             f"{percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, max "
             f"{latencies[-1]:.1f} ms; then a burst of {PUBLIC_BURST} per key: "
             f"{dict(burst_statuses)}, p99 {percentile(burst, 99):.1f} ms; server CPU "
             f"{server_cpu * 1e3 / max(1, total):.1f} ms per execute (agents running)")
    return {"public_execute_p99_ms": percentile(latencies, 99),
            "_public_p50_ms": percentile(latencies, 50),
            "_public_burst_p99_ms": percentile(burst, 99),
            "_public_burst_429": float(burst_statuses.get(429, 0))}


@dataclass
class Hook:
    event: str
    execution_id: str
    timestamp: str
    received_ns: int
    signed: bool


class WebhookReceiver:
    """A loopback HTTP/1.1 receiver that stamps each request when its body is complete and
    checks its `X-Webhook-Signature`; tasks wait for (execution, event) pairs."""

    def __init__(self, secret: bytes) -> None:
        self.secret = secret
        self.hooks: list[Hook] = []
        self.waiting: dict[tuple[str, str], asyncio.Future[Hook]] = {}
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self.serve, HOST, 0)
        self.port = self.server.sockets[0].getsockname()[1]

    def close(self) -> None:
        if self.server is not None:
            self.server.close()

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/hook"

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                fields: dict[bytes, bytes] = {}
                for line in head[:-4].split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    fields[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(fields.get(b"content-length", b"0")))
                received = time.time_ns()
                expected = b"sha256=" + hmac.new(self.secret, body,
                                                 hashlib.sha256).hexdigest().encode()
                signed = hmac.compare_digest(fields.get(b"x-webhook-signature", b""), expected)
                doc = json.loads(body)
                hook = Hook(doc["event"], doc["executionId"], doc["timestamp"], received,
                            signed)
                self.hooks.append(hook)
                future = self.waiting.get((hook.execution_id, hook.event))
                if future is not None and not future.done():
                    future.set_result(hook)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def expect(self, execution_id: str, event: str) -> asyncio.Future[Hook]:
        future = self.waiting.setdefault((execution_id, event),
                                         asyncio.get_running_loop().create_future())
        for hook in self.hooks:  # it may have come before anyone waited
            if (hook.execution_id, hook.event) == (execution_id, event) and not future.done():
                future.set_result(hook)
        return future


def delay_ms(hook: Hook) -> float:
    """Receipt minus the state change's own time (the payload's `timestamp`, in ms: the
    figure is over-stated by up to 1 ms)."""
    changed = datetime.fromisoformat(hook.timestamp.replace("Z", "+00:00"))
    return (hook.received_ns - changed.timestamp() * 1e9) / 1e6


async def phase_webhook(ctx: Context) -> dict[str, float]:
    needs_serve(ctx, "webhook")
    receiver = WebhookReceiver(WEBHOOK_SECRET.encode())
    await receiver.start()
    try:
        secrets = await public_keys(ctx, WEBHOOK_CLIENTS, "bench-webhook",
                                    webhookUrl=receiver.url, webhookSecret=WEBHOOK_SECRET)
        body = public_body()
        execute = f"{PUBLIC}/agents/{AGENT}/execute"
        conns = await open_connections(ctx.server, WEBHOOK_CLIENTS)

        async def client(conn: RawConnection, secret: str) -> None:
            """Execute, wait for the approval's webhook, approve, wait for the completion's
            (2 calls a round: the key's burst covers every round)."""
            headers = public_headers(secret)
            for _ in range(WEBHOOK_ROUNDS):
                status, answer = await conn.request("POST", execute, body, headers)
                if status != 202:
                    raise RuntimeError(f"execute answered {status}: {answer[:300]!r}")
                execution_id = json.loads(answer)["executionId"]
                waiting = receiver.expect(execution_id, "execution.pending_approval")
                completed = receiver.expect(execution_id, "execution.completed")
                await waiting
                status, answer = await conn.request(
                    "POST", f"{PUBLIC}/executions/{execution_id}/approve", b"{}", headers)
                if status != 200:
                    raise RuntimeError(f"approve answered {status}: {answer[:300]!r}")
                await completed

        gc.collect()
        gc.disable()  # a collection here would delay the receiver's stamps
        try:
            async with asyncio.timeout(TIMEOUT_S):
                await asyncio.gather(*(client(c, s) for c, s in zip(conns, secrets,
                                                                    strict=True)))
                # every execution's execution.started too
                while len(receiver.hooks) < 3 * WEBHOOK_CLIENTS * WEBHOOK_ROUNDS:
                    await asyncio.sleep(0.05)
        finally:
            gc.enable()
            for conn in conns:
                conn.close()
    finally:
        receiver.close()
    hooks = receiver.hooks
    unsigned = [h for h in hooks if not h.signed]
    if unsigned:
        raise RuntimeError(f"{len(unsigned)} of {len(hooks)} webhooks failed the signature")
    delays = sorted(delay_ms(h) for h in hooks)
    by_event = {event: sorted(delay_ms(h) for h in hooks if h.event == event)
                for event in sorted({h.event for h in hooks})}
    progress(f"webhook: {len(hooks)} signed deliveries; state change to receiver p50 "
             f"{percentile(delays, 50):.1f} ms, p99 {percentile(delays, 99):.1f} ms, max "
             f"{delays[-1]:.1f} ms; p50 by event: " + ", ".join(
                 f"{event} ({len(d)}) {percentile(d, 50):.1f} ms"
                 for event, d in by_event.items()))
    return {"webhook_delivery_p99_ms": percentile(delays, 99),
            "_webhook_p50_ms": percentile(delays, 50)}
async def phase_flows(ctx: Context) -> dict[str, float]:
    """`GET /flows/search?size=100`: every seeded flow as Kestra's document (input defaults as
    text, labels as a list), one client, sequential."""
    path = f"{API}/flows/search?size=100"
    conn = RawConnection(HOST, ctx.server.port)
    await conn.connect()
    try:
        latencies: list[float] = []
        for i in range(FLOWS_WARMUP + FLOWS_REQUESTS):
            t0 = time.perf_counter()
            status, body = await conn.request("GET", path)
            if status != 200:
                raise RuntimeError(f"flow search answered {status}: {body[:300]!r}")
            if i >= FLOWS_WARMUP:
                latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.close()
    latencies.sort()
    progress(f"flows: {len(latencies)} searches of {json.loads(body)['total']} flows, "
             f"{len(body)} bytes; p50 {percentile(latencies, 50):.2f} ms, p99 "
             f"{percentile(latencies, 99):.2f} ms")
    return {"flows_search_p99_ms": percentile(latencies, 99),
            "_flows_search_p50_ms": percentile(latencies, 50)}


async def phase_bulk(ctx: Context) -> dict[str, float]:
    """`POST /executions/labels/by-ids` over 1,000 seeded (finished) executions: each one
    checked, then relabelled, in one request."""
    ids = random.Random(7).sample(ctx.seeded.ids, min(BULK_IDS, len(ctx.seeded.ids)))
    body = {"executionsId": ids, "executionLabels": [{"key": "bench", "value": "bulk"}]}
    async with httpx.AsyncClient(base_url=ctx.server.url, timeout=TIMEOUT_S) as client:
        started = time.perf_counter()
        response = await client.post(f"{API}/executions/labels/by-ids", json=body)
        seconds = time.perf_counter() - started
    if response.status_code != 200 or response.json().get("count") != len(ids):
        raise RuntimeError(f"bulk labels answered {response.status_code}: "
                           f"{response.text[:300]!r}")
    progress(f"bulk: {len(ids)} executions labelled in {seconds:.2f} s")
    return {"bulk_labels_per_s": len(ids) / seconds}


def start_profiler(server: Server, out: Path) -> subprocess.Popen[bytes] | None:
    py_spy = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable)
                                                                      .parent))
    if py_spy is None:
        progress("--profile: py-spy not found (pip install py-spy); not profiling")
        return None
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(server.process.pid), "--format", "raw", "--rate", "250",
         "--nonblocking", "--gil", "--threads", "--output", str(out)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def stop_profiler(profiler: subprocess.Popen[bytes], out: Path, top: int = 25) -> None:
    profiler.send_signal(signal.SIGINT)
    try:
        _, err = profiler.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        profiler.kill()
        profiler.wait()
        return
    if not out.exists():
        progress(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    summarize_profile(out, top)


#: Frames every sample of a thread passes through: left out of the inclusive ranking.
BORING = re.compile(r"^(Thread\.|_run_code|_run_module_as_main|Runner\.run|run \(asyncio|"
                    r"BaseEventLoop\.run_(forever|until_complete)|<module>|main \(flowdeck/cli|"
                    r"thread \()")


def summarize_profile(path: Path, top: int = 25) -> None:
    """The heaviest frames of a py-spy raw profile: per thread, then self and inclusive.

    Sampled with ``--gil``: only the thread holding the GIL is recorded, so the shares are of
    the Python time the server spent (the resource a one-process asyncio server runs out of).
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0]] += count
        own[frames[-1]] += count
        for frame in set(frames[1:]):
            inclusive[frame] += count
    if not total:
        return
    print(f"  -- profile {path} ({total} samples)", file=sys.stderr)
    for name, count in threads.most_common():
        print(f"     {count / total:6.1%}  {name}", file=sys.stderr)
    print("     self:", file=sys.stderr)
    for name, count in own.most_common(top):
        print(f"     {count / total:6.1%}  {name}", file=sys.stderr)
    print("     inclusive:", file=sys.stderr)
    ranked = [(n, c) for n, c in inclusive.most_common() if not BORING.match(n)]
    for name, count in ranked[:top]:
        print(f"     {count / total:6.1%}  {name}", file=sys.stderr)


# -- reporting --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    key: str
    label: str
    unit: str
    target: float
    higher_is_better: bool
    digits: int

    def meets(self, value: float) -> bool:
        return value >= self.target if self.higher_is_better else value <= self.target


FIGURES = [
    Figure("get_execution_p50_ms", "GET execution, 50 clients, p50", "ms", math.nan, False, 2),
    Figure("get_execution_p99_ms", "GET execution, 50 clients, p99", "ms", 20, False, 2),
    Figure("requests_per_s", "GET execution throughput", "req/s", 1_500, True, 0),
    Figure("search_p99_ms", "search 25 of 10k, p99", "ms", math.nan, False, 2),
    Figure("create_executions_per_s", "POST create, 20 clients", "exec/s", math.nan, True, 1),
    Figure("log_follow_p99_ms", "log line -> SSE client, p99", "ms", 100, False, 1),
    Figure("log_follow_rss_mb", "100 slow followers, RSS growth", "MB", 200, False, 0),
    Figure("ping_p99_ms_under_abuse", "/ping p99 under abuse", "ms", 50, False, 1),
    Figure("release_creates_per_s", "POST /v1/releases, 50 clients", "rel/s", 500, True, 0),
    Figure("run_overhead_ms", "pipeline run vs the flow, median", "ms", 5, False, 2),
    Figure("webhook_delivery_p99_ms", "state change -> webhook receiver, p99", "ms", 100,
           False, 1),
    Figure("public_execute_p99_ms", "public execute, 50 keys at 1/s, p99", "ms", 25, False,
           2),
    Figure("flowctl_submit_p99_ms", "FlowCtl POST workflow, 50 cl, p99", "ms", math.nan,
           False, 1),
    Figure("flowctl_status_p99_ms", "FlowCtl GET workflow, 50 cl, p99", "ms", math.nan,
           False, 2),
    Figure("flows_search_p99_ms", "flow search (Kestra documents), p99", "ms", math.nan,
           False, 2),
    Figure("bulk_labels_per_s", "bulk labels by ids, 1,000 executions", "exec/s", math.nan,
           True, 0),
]

NOTES = {
    "_get_mean_ms": "GET execution mean latency: {:.2f} ms",
    "_get_server_cpu": "server CPU during GET load: {:.0f}% of one core",
    "_get_server_us": "server CPU per GET execution: {:.0f} us (all threads)",
    "_get_client_cpu": "load generator CPU during GET load: {:.0f}% of one core",
    "_ping_per_s": "GET /ping (the floor: no database, no routers), 50 clients: "
                   "{:,.0f} req/s",
    "_ping_server_us": "server CPU per GET /ping: {:.0f} us",
    "_search_p50_ms": "search p50: {:.2f} ms",
    "_flows_search_p50_ms": "flow search p50: {:.2f} ms",
    "_create_p99_ms": "POST create p99: {:.1f} ms",
    "_create_server_us": "server CPU per create: {:.0f} us (all threads, executions running)",
    "_create_finished_per_s": "created executions finished at {:.0f}/s (create to last done)",
    "_follow_p50_ms": "log follow p50: {:.1f} ms",
    "_follow_max_ms": "log follow max: {:.1f} ms",
    "_followrss_ping_p99_ms": "/ping p99 while 100 slow followers replay: {:.1f} ms",
    "_followrss_after_max_ms": "/ping max in the 2 s after they disconnect: {:.1f} ms",
    "_abuse_ping_max_ms": "/ping max under abuse: {:.1f} ms",
    "_abuse_yaml_bombs": "YAML bombs refused during the abuse window: {:.0f}",
    "_abuse_regex_bombs": "regex-bomb executions failed during the abuse window: {:.0f}",
    "_release_p99_ms": "POST /v1/releases p99: {:.1f} ms",
    "_release_server_us": "server CPU per release create: {:.0f} us",
    "_run_ms": "a pipeline run of 4 Log tasks, request to end event: {:.1f} ms (median)",
    "_flow_ms": "the same flow run directly: {:.1f} ms (median)",
    "_webhook_p50_ms": "webhook delivery p50: {:.1f} ms",
    "_public_p50_ms": "public execute p50: {:.2f} ms",
    "_public_burst_p99_ms": "public execute, a burst of 8 per key at once (50 keys), p99: "
                            "{:.1f} ms",
    "_public_burst_429": "429s in that burst: {:.0f}",
    "_flowctl_submit_p50_ms": "FlowCtl POST workflow p50: {:.1f} ms",
    "_flowctl_submit_per_s": "FlowCtl POST workflow throughput: {:,.0f} req/s",
    "_flowctl_finished_per_s": "submitted workflows completed at {:.0f}/s (submit to last done)",
    "_flowctl_status_p50_ms": "FlowCtl GET workflow p50: {:.2f} ms",
    "_flowctl_status_per_s": "FlowCtl GET workflow throughput: {:,.0f} req/s",
    "_flowctl_status_server_us": "server CPU per FlowCtl GET workflow: {:.0f} us",
}

PHASES: dict[str, Callable[[Context], Awaitable[dict[str, float]]]] = {
    "get": phase_get, "search": phase_search, "follow": phase_follow, "create": phase_create,
    "followrss": phase_followrss, "abuse": phase_abuse,
    "flows": phase_flows, "bulk": phase_bulk,
    "flowctl": phase_flowctl, "webhook": phase_webhook, "public": phase_public,
}
#: Phases on a server of their own (see forge_server), after the others.
FORGE_PHASES: dict[str, Callable[[Path, str], Awaitable[dict[str, float]]]] = {
    "release": phase_release, "pipeline": phase_pipeline,
}


def print_table(results: dict[str, float], how: str) -> None:
    print(f"server: {how}")
    print(f"{'figure':<34} {'value':>10} {'unit':<7} {'target':>9}  ")
    print("-" * 70)
    for fig in FIGURES:
        if fig.key not in results:
            continue
        value = results[fig.key]
        if math.isnan(fig.target):
            target, verdict = "", ""
        else:
            target = ("≥ " if fig.higher_is_better else "≤ ") + f"{fig.target:g}"
            verdict = "ok" if fig.meets(value) else "MISS"
        print(f"{fig.label:<34} {value:>10,.{fig.digits}f} {fig.unit:<7} {target:>9}  {verdict}")
    notes = [text.format(results[key]) for key, text in NOTES.items() if key in results]
    if notes:
        print()
        for note in notes:
            print(f"  {note}")


def rounded(results: dict[str, float]) -> dict[str, float]:
    digits = {fig.key: fig.digits for fig in FIGURES}
    return {key: round(value, digits[key]) for key, value in results.items()
            if not key.startswith("_")}


async def run(selected: list[str], launcher: str, profile: Path | None
              ) -> tuple[dict[str, float], str]:
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="flowdeck-bench-api-") as tmp_name:
        tmp = Path(tmp_name)
        data_dir = tmp / "data"
        started = time.perf_counter()
        seeded = await seed(data_dir, SEED_EXECUTIONS)
        progress(f"seeding took {time.perf_counter() - started:.1f} s")
        server = await start_server(data_dir, tmp, launcher)
        how = f"{server.how} (pid {server.process.pid}, {server.url})"
        progress(f"server: {how}")
        try:
            ctx = Context(server, seeded)
            for name in selected:
                progress(f"{name} ...")
                started = time.perf_counter()
                profiler = out = None
                if profile is not None:
                    profile.mkdir(parents=True, exist_ok=True)
                    out = profile / f"api-{name}.txt"
                    profiler = start_profiler(server, out)
                try:
                    results.update(await PHASES[name](ctx))
                finally:
                    if profiler is not None and out is not None:
                        stop_profiler(profiler, out)
                if server.process.poll() is not None:
                    raise RuntimeError(f"the server died:\n{server.log_tail()}")
                progress(f"{name} took {time.perf_counter() - started:.1f} s")
        except BaseException:
            progress(f"server log:\n{server.log_tail()}")
            raise
        finally:
            await stop_server(server)
    return results, how


async def run_forge(selected: list[str]) -> dict[str, float]:
    """The forge phases, each on a server of its own. Always `flowdeck serve`: it turns
    authentication on when tokens exist, so each client is a user of its own."""
    results: dict[str, float] = {}
    for name in selected:
        with tempfile.TemporaryDirectory(prefix="flowdeck-bench-forge-") as tmp_name:
            progress(f"{name} ...")
            started = time.perf_counter()
            results.update(await FORGE_PHASES[name](Path(tmp_name), "serve"))
            progress(f"{name} took {time.perf_counter() - started:.1f} s")
    return results


def main(argv: list[str] | None = None) -> int:
    global VERBOSE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    every = [*PHASES, *FORGE_PHASES]
    parser.add_argument("--only", default=",".join(every),
                        help=f"comma-separated phases to run (default: {','.join(every)})")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--launcher", choices=("auto", "serve", "uvicorn"), default="auto",
                        help="`flowdeck serve`, the bench's own uvicorn launcher, or serve if "
                             "the CLI has it (default)")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="record each phase of the server with py-spy into DIR")
    args = parser.parse_args(argv)
    selected = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in selected if p not in every]
    if unknown or not selected:
        parser.error(f"unknown phase(s) {unknown}; choose from {', '.join(every)}")
    selected = [p for p in every if p in selected]  # the documented order
    VERBOSE = not args.quiet
    results: dict[str, float] = {}
    how = "serve (the forge phases' own servers)"
    if any(p in PHASES for p in selected):
        results, how = asyncio.run(run([p for p in selected if p in PHASES], args.launcher,
                                       args.profile))
    if any(p in FORGE_PHASES for p in selected):
        results.update(asyncio.run(run_forge([p for p in selected if p in FORGE_PHASES])))
    if args.json:
        print(json.dumps(rounded(results)))
    else:
        print_table(results, how)
    return 0


if __name__ == "__main__":
    sys.exit(main())
