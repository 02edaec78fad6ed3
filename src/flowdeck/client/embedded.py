"""The engine in this process, on its own event loop in a background thread.

The caller (the deck, the CLI) keeps its loop for keystrokes and drawing; the engine gets a
loop of its own in a thread named `flowdeck-engine`, so a task printing fifty thousand lines a
second never delays a keypress. This module is the only bridge between the two loops:

- a call runs on the engine loop (`asyncio.run_coroutine_threadsafe`) and is awaited on the
  caller's (`asyncio.wrap_future`), so a busy engine never blocks the caller; cancelling the
  awaiting caller cancels the engine-side work;
- a stream is pumped by a task on the engine loop into a queue on the caller's loop
  (`loop.call_soon_threadsafe`). The pump holds a fixed number of credits and waits for the
  consumer to return one before it sends more, so a slow consumer slows the pump instead of
  filling memory (log followers then re-read from the store; execution watchers coalesce
  snapshots per execution). Closing the iterator (`aclose()`, or its finalisation
  once unreferenced) cancels the pump;
- engine objects never cross: every execution handed over is a fresh copy read from its
  committed JSON, so the engine can keep mutating its own.

Errors the engine reports to people (`FlowdeckError`) pass through unchanged; anything else
that escapes the engine (a storage driver's error, a closed connection while the backend is
closing) becomes `BackendUnavailable` at the bridge, so a caller only ever handles flowdeck's
own errors. Closing cancels every call still in flight before the engine closes.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, TypeVar

from flowdeck.client.backend import (
    Capabilities,
    ExecutionFilter,
    FlowInfo,
    InterruptedRun,
    Page,
)
from flowdeck.core.clock import Clock
from flowdeck.core.errors import BackendUnavailable, BadRequestError, FlowdeckError
from flowdeck.core.models import Approval, Execution, LogEntry
from flowdeck.core.states import ACTIVE_STATES, TERMINAL_STATES, is_terminal
from flowdeck.engine.bus import APPROVAL, EXECUTION, ApprovalEvent, ExecutionEvent
from flowdeck.engine.engine import Engine, EngineSettings
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.query import ExecutionQuery
from flowdeck.engine.tasks.base import FlowableTask

T = TypeVar("T")

#: Items a stream may have in flight between the engine and a consumer that is not reading.
STREAM_CREDITS = 256
#: Credits a consumer hands back at once (fewer cross-thread wake-ups on a busy stream).
CREDIT_BATCH = 32
#: How long `close()` waits for the engine to stop cleanly.
CLOSE_TIMEOUT = 30.0
#: At most this many unfinished executions are listed when asked what closing interrupts.
INTERRUPTED_LIMIT = 1000
#: Approval statuses a list may ask for ("all" or None: every one).
APPROVAL_STATUSES = ("pending", "approved", "rejected", "expired")


def filter_to_query(query: ExecutionFilter) -> ExecutionQuery:
    """The executions list's filter as the engine's query (a namespace includes children)."""
    return ExecutionQuery(
        namespace=query.namespace or None, namespace_mode="PREFIX",
        flow_id=query.flow_id or None,
        states=[s.upper() for s in query.states] if query.states else None,
        labels=dict(query.labels), start_after=query.since, start_before=query.until,
        q=query.q or None, page=query.page, size=query.size, sort=list(query.sort))


def flowdeck_version() -> str:
    try:
        return version("flowdeck")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def flow_info(flow: FlowDefinition) -> FlowInfo:
    return FlowInfo.from_kestra(copy.deepcopy(flow.to_dict(with_source=True)))


def _fresh(doc: dict[str, Any]) -> Execution:
    """An Execution that shares nothing with the engine's objects (via its JSON text)."""
    return Execution.from_dict(json.loads(json.dumps(doc, separators=(",", ":"))))


def _snapshot(engine: Engine, execution: Execution) -> Execution:
    return _fresh(execution.to_dict(engine.clock.now()))


class Emitter:
    """The engine-side end of a stream: `await emit(item)`, or `credit()` then `send(item)`
    to build the item only once the consumer has room for it (so it is as fresh as can be)."""

    def __init__(self, credits: int, deliver: Callable[[str, Any], None]) -> None:
        self._semaphore = asyncio.Semaphore(credits)  # created and used on the engine loop
        self._deliver = deliver

    async def credit(self) -> None:
        await self._semaphore.acquire()

    def send(self, item: Any) -> None:
        self._deliver("item", item)

    def top_up(self) -> None:
        self._semaphore.release()

    async def __call__(self, item: Any) -> None:
        await self.credit()
        self.send(item)


class EmbeddedBackend:
    """`Backend` over an engine running on its own loop in a background thread."""

    def __init__(self, settings: EngineSettings, *, clock: Clock | None = None,
                 ids: Callable[[], str] | None = None,
                 stream_credits: int = STREAM_CREDITS, start: bool = True,
                 read_only: bool = False) -> None:
        """`start=False` opens the engine without starting it: no recovery of what an earlier
        process left unfinished, no scheduler, so reading (flows, executions, logs,
        approvals) changes nothing; `await start()` starts it before a state change.

        `read_only=True` reads an existing database without the data dir's lock, beside the
        engine of another process (a deck, `flowdeck serve`); it never starts, and every
        change is refused."""
        self.settings = settings
        self._read_only = read_only
        self._start = start and not read_only
        self._started = False
        self._clock = clock
        self._ids = ids
        self._credits = max(1, stream_credits)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._engine: Engine | None = None
        self._capabilities: Capabilities | None = None
        #: Calls and stream pumps running on the engine loop (touched only there), cancelled
        #: and awaited by `close()` before the engine closes.
        self._engine_tasks: set[asyncio.Task[Any]] = set()
        #: Streams open on the caller's side (touched only there); for diagnostics and tests.
        self._pumps: set[concurrent.futures.Future[None]] = set()
        self._closing = False
        self._lock = asyncio.Lock()

    @property
    def name(self) -> str:
        return "embedded"

    @property
    def started(self) -> bool:
        """Whether the connected engine runs (recovery done, scheduler on if configured)."""
        return self._started

    @property
    def read_only(self) -> bool:
        """Whether the engine was opened read-only, beside another process's engine."""
        return self._read_only

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    @property
    def engine_loop(self) -> asyncio.AbstractEventLoop | None:
        """The engine's loop (None until connected); for diagnostics and tests."""
        return self._loop

    # -- lifecycle ----------------------------------------------------------------------------

    async def connect(self) -> Capabilities:
        """Start the engine thread and open the engine there (once; later calls are no-ops)."""
        async with self._lock:
            if self._capabilities is not None:
                return self._capabilities
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run_loop, args=(loop,),
                                      name="flowdeck-engine", daemon=True)
            thread.start()
            self._loop, self._thread = loop, thread
            try:
                future = asyncio.run_coroutine_threadsafe(
                    Engine.open(self.settings, clock=self._clock, ids=self._ids,
                                start=self._start, read_only=self._read_only), loop)
                self._engine = await asyncio.wrap_future(future)
            except BaseException:
                await self._stop_thread()
                raise
            self._started = self._start
            self._capabilities = Capabilities(kind="embedded", version=flowdeck_version(),
                                              approvals=True, staging=True,
                                              releases=True,
                                              action_paths="2.x", role="admin")
            return self._capabilities

    async def start(self) -> None:
        """Start an engine connected with `start=False` (recovery, then the scheduler if the
        settings ask for it); a no-op once it runs."""
        async with self._lock:
            if self._started:
                return
            await self.engine_call(lambda e: e.start())
            self._started = True

    async def wait_released(self, execution_id: str, timeout: float) -> None:
        """Wait (at most `timeout` s) until an ended execution's runner in this process has
        let go, so its last log lines are committed too (they can trail the final state by
        one commit). Returns at once when the engine is not running."""
        if not self._started:
            return

        async def run(engine: Engine) -> None:
            with contextlib.suppress(TimeoutError):
                await engine.wait_until_terminal(execution_id, timeout=timeout)

        await self.engine_call(run)

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
                loop.run_until_complete(loop.shutdown_default_executor())
            finally:
                asyncio.set_event_loop(None)
                loop.close()

    async def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(loop.stop)
        await asyncio.to_thread(thread.join, CLOSE_TIMEOUT)

    async def close(self) -> None:
        """Stop every stream, close the engine on its loop, and join its thread."""
        async with self._lock:
            engine, loop = self._engine, self._loop
            self._engine = None
            self._capabilities = None
            self._started = False
            self._closing = True
            try:
                if loop is not None and not loop.is_closed():
                    future = asyncio.run_coroutine_threadsafe(self._shut(engine), loop)
                    await asyncio.wait_for(asyncio.wrap_future(future), CLOSE_TIMEOUT)
            finally:
                self._closing = False
                await self._stop_thread()

    async def _shut(self, engine: Engine | None) -> None:
        """On the engine loop: cancel the calls and streams in flight and wait until they
        have ended, so none of them touches the store while it closes; then close it."""
        tasks = list(self._engine_tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if engine is not None:
            await engine.close()

    async def _tracked(self, work: Awaitable[T]) -> T:
        """Run `work` on the engine loop as a task `close()` can cancel and wait for."""
        task = asyncio.current_task()
        assert task is not None
        self._engine_tasks.add(task)
        try:
            return await work
        finally:
            self._engine_tasks.discard(task)

    async def ping(self) -> None:
        """The engine's loop answers (a call that does nothing, there and back)."""
        await self._sync(lambda e: None)

    async def runs_stopped_by_close(self) -> list[InterruptedRun]:
        """Every unfinished execution but those waiting (PAUSED: they wait again after the
        next start, nothing is cut short), each with the running tasks that run again at the
        next start or fail then, as recovery decides (`retryOnCrash`)."""

        async def run(engine: Engine) -> list[InterruptedRun]:
            states = sorted(ACTIVE_STATES - {"PAUSED"})
            found, _ = await engine.search_executions(
                ExecutionQuery(states=states, size=INTERRUPTED_LIMIT))
            out = []
            for execution in found:
                rerun: list[str] = []
                fail: list[str] = []
                try:
                    flow = await engine.get_flow_revision(
                        execution.namespace, execution.flow_id, execution.flow_revision)
                except FlowdeckError:
                    flow = None
                for tr in execution.task_runs:
                    if tr.state.current in TERMINAL_STATES or tr.state.current == "PAUSED":
                        continue
                    task = flow.tasks_by_id.get(tr.task_id) if flow is not None else None
                    if task is None or isinstance(task, FlowableTask):
                        continue
                    (rerun if task.may_rerun_after_crash() else fail).append(tr.task_id)
                out.append(InterruptedRun(execution.id, execution.namespace, execution.flow_id,
                                          execution.state.current, tuple(rerun), tuple(fail)))
            return out

        return await self.engine_call(run)

    async def __aenter__(self) -> EmbeddedBackend:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- the bridge ---------------------------------------------------------------------------

    def _require(self) -> tuple[Engine, asyncio.AbstractEventLoop]:
        engine, loop = self._engine, self._loop
        if engine is None or loop is None or loop.is_closed():
            raise BackendUnavailable("the embedded engine is not running; connect() first")
        return engine, loop

    async def engine_call(self, fn: Callable[[Engine], Awaitable[T]]) -> T:
        """Run `fn(engine)` on the engine's loop and await its result from this one.

        For the CLI and tests that need an engine feature the protocol does not cover. Do not
        hand engine-owned mutable objects back out: copy them inside `fn`.
        """
        engine, loop = self._require()

        async def run() -> T:
            return await fn(engine)

        future = asyncio.run_coroutine_threadsafe(self._tracked(run()), loop)
        try:
            return await asyncio.wrap_future(future)
        except FlowdeckError:
            raise
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if future.cancelled() and not (current is not None and current.cancelling()):
                # Cancelled by close(), not by our caller: the engine went away.
                raise BackendUnavailable("the embedded engine was closed") from None
            raise
        except Exception as exc:
            if self._closing or self._engine is not engine:
                raise BackendUnavailable("the embedded engine was closed") from None
            raise BackendUnavailable(
                f"the embedded engine failed: {type(exc).__name__}: {exc}") from exc

    async def _sync(self, fn: Callable[[Engine], T]) -> T:
        """Run a plain function of the engine on its loop (its state is not thread-safe)."""

        async def run(engine: Engine) -> T:
            return fn(engine)

        return await self.engine_call(run)

    def _stream(self, produce: Callable[[Engine, Emitter], Awaitable[None]]
                ) -> AsyncIterator[Any]:
        """Bridge an engine-side producer into an async iterator on the caller's loop.

        `produce(engine, emit)` runs as a task on the engine loop; each `await emit(item)`
        waits for a credit, then hands `item` to the caller's queue. When `produce` returns
        the iterator ends; when it raises, the iterator raises the same exception; when the
        consumer stops early, the task is cancelled (and awaited, briefly).
        """
        return self._consume(produce)

    async def _consume(self, produce: Callable[[Engine, Emitter], Awaitable[None]]
                       ) -> AsyncIterator[Any]:
        engine, loop = self._require()
        caller = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        finished = asyncio.Event()
        emitters: list[Emitter] = []

        def deliver(kind: str, item: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the caller's loop has gone away
                caller.call_soon_threadsafe(queue.put_nowait, (kind, item))

        async def pump() -> None:
            emitter = Emitter(self._credits, deliver)
            emitters.append(emitter)
            outcome: tuple[str, Any] = ("closed", None)
            try:
                await produce(engine, emitter)
                outcome = ("end", None)
            except Exception as exc:
                outcome = ("error", exc)
            finally:
                deliver(*outcome)
                with contextlib.suppress(RuntimeError):
                    caller.call_soon_threadsafe(finished.set)

        def top_up(count: int) -> None:
            if emitters:
                for _ in range(count):
                    emitters[0].top_up()

        future = asyncio.run_coroutine_threadsafe(self._tracked(pump()), loop)
        self._pumps.add(future)
        owed = 0  # credits consumed here and not yet handed back
        try:
            while True:
                kind, item = await queue.get()
                if kind == "item":
                    owed += 1
                    # Hand credits back in batches (one wake-up of the engine thread per
                    # batch, not per item), and all of them whenever the queue runs dry, so
                    # the pump never waits on credits a caught-up consumer is holding.
                    if owed >= CREDIT_BATCH or queue.empty():
                        with contextlib.suppress(RuntimeError):  # the engine loop has stopped
                            loop.call_soon_threadsafe(top_up, owed)
                        owed = 0
                    yield item
                elif kind == "error":
                    if isinstance(item, FlowdeckError):
                        raise item
                    raise BackendUnavailable(
                        "the embedded engine was closed" if self._engine is not engine
                        else f"the embedded engine failed: {type(item).__name__}: {item}"
                    ) from item
                elif kind == "end":
                    return
                else:
                    raise BackendUnavailable("the embedded engine was closed")
        finally:
            try:
                if not finished.is_set():
                    future.cancel()
                    if not loop.is_closed():
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(finished.wait(), 2.0)
            finally:
                self._pumps.discard(future)

    # -- flows --------------------------------------------------------------------------------

    async def list_flows(self, namespace: str | None = None) -> list[FlowInfo]:
        return await self._sync(lambda e: [flow_info(f) for f in e.list_flows(namespace)])

    async def get_flow(self, namespace: str, flow_id: str) -> FlowInfo:
        return await self._sync(lambda e: flow_info(e.get_flow(namespace, flow_id)))

    async def apply_flow(self, source: str) -> FlowInfo:
        async def run(engine: Engine) -> FlowInfo:
            flow, _ = await engine.apply_flow(source)
            return flow_info(flow)

        return await self.engine_call(run)

    async def delete_flow(self, namespace: str, flow_id: str) -> None:
        await self.engine_call(lambda e: e.delete_flow(namespace, flow_id))

    # -- executions ---------------------------------------------------------------------------

    async def search_executions(self, query: ExecutionFilter) -> Page:
        engine_query = filter_to_query(query)

        async def run(engine: Engine) -> Page:
            results, total = await engine.search_executions(engine_query)
            return Page(results, total)  # fresh objects read from the store

        return await self.engine_call(run)

    async def get_execution(self, execution_id: str) -> Execution:
        return await self.engine_call(lambda e: e.get_execution(execution_id))

    async def create_execution(self, namespace: str, flow_id: str,
                               inputs: dict[str, Any] | None = None,
                               labels: list[tuple[str, str]] | None = None) -> Execution:
        async def run(engine: Engine) -> Execution:
            execution = await engine.create_execution(
                namespace, flow_id, inputs=dict(inputs or {}), labels=list(labels or []))
            return _snapshot(engine, execution)  # the runner owns (and mutates) the original

        return await self.engine_call(run)

    async def _act(self, action: Callable[[Engine], Awaitable[Execution]]) -> Execution:
        async def run(engine: Engine) -> Execution:
            return _snapshot(engine, await action(engine))

        return await self.engine_call(run)

    async def kill(self, execution_id: str) -> Execution:
        return await self._act(lambda e: e.kill(execution_id))

    async def restart(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        return await self._act(lambda e: e.restart(execution_id, task_run_id=task_run_id))

    async def replay(self, execution_id: str, task_run_id: str | None = None) -> Execution:
        return await self._act(lambda e: e.replay(execution_id, task_run_id=task_run_id))

    async def pause(self, execution_id: str) -> Execution:
        return await self._act(lambda e: e.pause(execution_id))

    async def resume(self, execution_id: str, inputs: dict[str, Any] | None = None
                     ) -> Execution:
        return await self._act(lambda e: e.resume(execution_id, dict(inputs or {})))

    async def logs(self, execution_id: str, *, after_seq: int = 0,
                   min_level: str | None = None) -> list[LogEntry]:
        return await self.engine_call(
            lambda e: e.logs_for(execution_id, after_seq=after_seq, min_level=min_level))

    def follow_execution(self, execution_id: str) -> AsyncIterator[Execution]:
        """Snapshots until the execution is terminal (not PAUSED), then the iterator ends.

        Events only wake the pump; each wake drains them and re-reads the committed execution,
        so a burst of changes becomes one snapshot, and none is older than the one before.
        """

        async def produce(engine: Engine, emit: Emitter) -> None:
            sub = engine.subscribe(EXECUTION, execution_id=execution_id)
            try:
                last = await engine.get_execution(execution_id)
                await emit(last)
                while not is_terminal(last.state.current):
                    with contextlib.suppress(TimeoutError):
                        await sub.get(5.0)  # a periodic re-read is a cheap safety net
                    sub.lagged = False
                    while not sub.queue.empty():
                        sub.queue.get_nowait()
                    current = await engine.get_execution(execution_id)
                    if current != last:
                        last = current
                        await emit(current)
            finally:
                sub.close()

        return self._stream(produce)

    def follow_logs(self, execution_id: str, *, after_seq: int = 0) -> AsyncIterator[LogEntry]:
        """Stored lines after `after_seq`, then live ones; never ends by itself."""

        async def produce(engine: Engine, emit: Emitter) -> None:
            await engine.get_execution(execution_id)  # NotFoundError for an unknown id
            follow = engine.follow_logs(execution_id, after_seq=after_seq)
            try:
                async for entry in follow:
                    if entry is not None:
                        await emit(entry)
            finally:
                await follow.aclose()  # type: ignore[attr-defined]

        return self._stream(produce)

    def watch_executions(self) -> AsyncIterator[Execution]:
        """A snapshot each time any execution changes (changes coalesce per execution while
        the consumer is behind, so the latest state always arrives)."""

        async def produce(engine: Engine, emit: Emitter) -> None:
            sub = engine.subscribe(EXECUTION)
            pending: dict[str, dict[str, Any]] = {}
            ready = asyncio.Event()

            async def collect() -> None:
                while True:
                    event: ExecutionEvent = await sub.get()
                    pending.pop(event.execution_id, None)
                    pending[event.execution_id] = event.doc
                    ready.set()
                    if sub.lagged:  # should not happen: collecting is cheap; re-read to be sure
                        sub.lagged = False
                        recent, _ = await engine.search_executions(ExecutionQuery(size=100))
                        for ex in recent:
                            pending.setdefault(ex.id, ex.to_dict(engine.clock.now()))
                        ready.set()

            collector = asyncio.get_running_loop().create_task(collect())
            try:
                while True:
                    await emit.credit()
                    while not pending:
                        ready.clear()
                        await ready.wait()
                    doc = pending.pop(next(iter(pending)))
                    emit.send(_fresh(doc))
            finally:
                collector.cancel()
                with contextlib.suppress(BaseException):
                    await collector
                sub.close()

        return self._stream(produce)

    # -- approvals ----------------------------------------------------------------------------

    async def list_approvals(self, status: str | None = "pending") -> list[Approval]:
        wanted = None if status in (None, "", "all") else status
        if wanted is not None and wanted not in APPROVAL_STATUSES:
            raise BadRequestError(f"status must be one of {', '.join(APPROVAL_STATUSES)} or all, "
                                  f"not '{status}'")
        return await self.engine_call(lambda e: e.approvals.list(wanted))

    async def get_approval(self, approval_id: str) -> Approval:
        return await self.engine_call(lambda e: e.approvals.get(approval_id))

    async def decide(self, approval_id: str, *, approve: bool, by: str,
                     comment: str | None = None) -> Approval:
        return await self.engine_call(
            lambda e: e.approvals.decide(approval_id, approve=approve, by=by, comment=comment))

    async def decide_many(self, approval_ids: list[str], *, by: str,
                          comment: str | None = None) -> list[Approval]:
        ids = list(approval_ids)
        return await self.engine_call(
            lambda e: e.approvals.decide_many(ids, by=by, comment=comment))

    def watch_approvals(self) -> AsyncIterator[Approval]:
        """Each created, decided or expired approval."""

        async def produce(engine: Engine, emit: Emitter) -> None:
            sub = engine.subscribe(APPROVAL)
            try:
                while True:
                    event: ApprovalEvent = await sub.get()
                    await emit(Approval.from_dict(copy.deepcopy(event.approval)))
                    if sub.lagged:  # re-send what is pending rather than lose a request
                        sub.lagged = False
                        for approval in await engine.approvals.list("pending"):
                            await emit(approval)
            finally:
                sub.close()

        return self._stream(produce)
