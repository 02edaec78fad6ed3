"""Running executions: one driver task each, within the global and per-flow concurrency limits.

An execution takes a slot of its flow's `concurrency` limit (QUEUE waits for one, CANCEL and
FAIL end it at once) and then one of the engine's global slots; both are given back when its
driver ends. Flows of one namespace that name the same `concurrency.key` share one limit (the
bundled staging flows do: at most that many staging executions at once, whichever flows).

The runners of running executions are held here, and only here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from flowdeck.core.models import Execution
from flowdeck.core.states import TERMINAL_STATES, is_terminal
from flowdeck.engine.concurrency import Slots
from flowdeck.engine.flows import FlowDefinition
from flowdeck.engine.runner import ExecutionRunner
from flowdeck.engine.secrets import secret_ids

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: How long `stop` waits for running executions to stop before the engine closes anyway.
CLOSE_DRIVERS_S = 2.0


def slot_key(flow: FlowDefinition) -> tuple[str, str]:
    """Whose slots a flow's concurrency limit counts: its own, or its namespace's shared key."""
    key = flow.concurrency.key if flow.concurrency is not None else None
    return (flow.namespace, f"key:{key}") if key else (flow.namespace, flow.id)


class Launcher:
    def __init__(self, engine: Engine, max_concurrent: int) -> None:
        self._engine = engine
        self.global_slots = Slots(max_concurrent)
        self._runners: dict[str, ExecutionRunner] = {}
        self._drivers: set[asyncio.Task[None]] = set()
        self._flow_slots: dict[tuple[str, str], Slots] = {}

    # -- what runs ----------------------------------------------------------------------------

    def runner(self, execution_id: str) -> ExecutionRunner | None:
        return self._runners.get(execution_id)

    def is_running(self, execution_id: str) -> bool:
        return execution_id in self._runners

    def running_ids(self) -> list[str]:
        return sorted(self._runners)

    def forget(self, execution_id: str) -> None:
        self._runners.pop(execution_id, None)

    async def settle(self, execution_id: str) -> None:
        """If the execution just reached a final state, wait for its runner to let go."""
        runner = self._runners.get(execution_id)
        if runner is not None and is_terminal(runner.execution.state.current):
            await self.runner_gone(execution_id)

    async def runner_gone(self, execution_id: str) -> None:
        runner = self._runners.get(execution_id)
        if runner is not None and runner.task is not None:
            await asyncio.wait({runner.task})

    # -- starting and stopping ------------------------------------------------------------------

    def launch(self, execution: Execution, flow: FlowDefinition,
               secrets: dict[str, Any] | None = None) -> ExecutionRunner:
        """Start driving `execution`; `secrets` are its clear SECRET inputs when just created
        (otherwise the runner reads them back)."""
        runner = ExecutionRunner(self._engine, execution, flow)
        if secrets is not None:
            runner.use_secrets(secrets)
        self._runners[execution.id] = runner
        task = asyncio.get_running_loop().create_task(self._drive(runner),
                                                      name=f"execution-{execution.id}")
        runner.task = task
        self._drivers.add(task)
        task.add_done_callback(self._drivers.discard)
        return runner

    async def stop(self) -> None:
        """Cancel every driver (the engine is closing: executions stay recoverable)."""
        drivers = list(self._drivers)
        for task in drivers:
            task.cancel()
        if drivers:  # bounded: a store that cannot write must not hold the shutdown
            done, _ = await asyncio.wait(drivers, timeout=CLOSE_DRIVERS_S)
            for task in done:
                if not task.cancelled():
                    task.exception()  # retrieved: a failing store is reported by the store

    def poisoned(self, execution: Execution, reason: str) -> None:
        """Its state cannot be stored (the store wrote a FAILED marker): say why, stop it."""
        self._engine.logs.emit(execution, None, "ERROR", [
            f"flowdeck could not store the state of this execution ({reason}); it is marked "
            "FAILED and stopped"])
        runner = self._runners.get(execution.id)
        if runner is not None and runner.execution is execution and runner.task is not None:
            runner.task.cancel()

    def flow_changed(self, flow: FlowDefinition) -> None:
        """A new revision may change its limit; executions already queued see it."""
        slots = self._flow_slots.get(slot_key(flow))
        concurrency = self._engine.flow_policies.concurrency(flow)
        if slots is not None and concurrency is not None:
            slots.limit = concurrency.limit

    def _slots_for(self, flow: FlowDefinition) -> Slots | None:
        concurrency = self._engine.flow_policies.concurrency(flow)
        if concurrency is None:
            return None
        key = slot_key(flow)
        slots = self._flow_slots.get(key)
        if slots is None:
            slots = self._flow_slots[key] = Slots(concurrency.limit)
        return slots

    async def _take_flow_slot(self, runner: ExecutionRunner, slots: Slots) -> bool:
        """Take a slot of the flow's limit: True once held, False if the execution ended."""
        if slots.try_acquire():
            return True
        concurrency = self._engine.flow_policies.concurrency(runner.flow)
        assert concurrency is not None
        if concurrency.behavior in ("CANCEL", "FAIL"):
            final = "CANCELLED" if concurrency.behavior == "CANCEL" else "FAILED"
            runner.execution_log("WARN" if final == "CANCELLED" else "ERROR",
                                 f"flow concurrency limit of {slots.limit} reached: "
                                 f"execution {final.lower()}")
            runner.set_state(final)
            await self._engine.store.flush()
            return False
        runner.set_state("QUEUED")
        await slots.acquire()
        return True

    async def _drive(self, runner: ExecutionRunner) -> None:
        engine, ex = self._engine, runner.execution
        flow_slots = self._slots_for(runner.flow)
        holds_flow_slot = False
        try:
            if flow_slots is not None:
                holds_flow_slot = await self._take_flow_slot(runner, flow_slots)
                if not holds_flow_slot:
                    return
            await self.global_slots.acquire()
            runner._holds_global_slot = True
            await runner.run()
        except asyncio.CancelledError:
            if engine.shutting_down:
                if ex.state.current in ("RUNNING", "RETRYING", "RESTARTED", "KILLING"):
                    runner.execution_log("WARN", "flowdeck stopped while this execution ran; "
                                                 "it continues when flowdeck starts again")
                await engine.store.flush()
            elif ex.state.current not in TERMINAL_STATES:
                runner._finish_killed()
                await engine.store.flush()
        except Exception as exc:  # the engine must survive a bug in one execution
            runner.execution_log("ERROR", f"internal error: {type(exc).__name__}: {exc}")
            if ex.state.current not in TERMINAL_STATES:
                runner.set_state("FAILED")
            with contextlib.suppress(Exception):
                await engine.store.flush()
        finally:
            if runner._holds_global_slot:
                self.global_slots.release()
                runner._holds_global_slot = False
            if holds_flow_slot and flow_slots is not None:
                flow_slots.release()
            if self._runners.get(ex.id) is runner:
                del self._runners[ex.id]
            if not engine.shutting_down:
                engine.logs.forget(ex.id)
                if is_terminal(ex.state.current) and secret_ids(runner.flow.inputs):
                    engine.secret_inputs.forget(ex.id)
