"""What a task type may use while it runs, instead of the whole engine.

Tasks reach the rest of flowdeck only through `ctx.services`: the clock and ids, the data dir
and settings (staging providers read their configuration there), the environment shell tasks
start from and how they are isolated, templates, the KV store, the public-API, forge and
FlowCtl services their task types report to, and a way to stage the execution's state.
Anything else a task needs is a new, named member here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flowdeck.core.clock import Clock
    from flowdeck.core.models import Execution
    from flowdeck.engine.engine import Engine, EngineSettings
    from flowdeck.engine.flowctl.service import FlowctlService
    from flowdeck.engine.forge.service import ForgeService
    from flowdeck.engine.isolation import TaskIsolation
    from flowdeck.engine.kv import KVStore
    from flowdeck.engine.public.service import PublicService
    from flowdeck.engine.templating import TemplateRenderer


@dataclass(frozen=True, slots=True)
class TaskServices:
    settings: EngineSettings
    data_dir: Path
    clock: Clock
    new_id: Callable[[], str]
    #: The environment shell tasks start from, and how their processes are isolated.
    task_env: Mapping[str, str]
    isolation: TaskIsolation
    renderer: TemplateRenderer
    kv: KVStore
    public: PublicService
    forge: ForgeService
    flowctl: FlowctlService
    #: Write the running execution's state with the next group commit (a task that keeps
    #: its own bookkeeping in it, as FlowCtl's workflow task does).
    stage_execution: Callable[[Execution], None]

    @classmethod
    def of(cls, engine: Engine) -> TaskServices:
        return cls(settings=engine.settings, data_dir=engine.data_dir, clock=engine.clock,
                   new_id=engine.new_id, task_env=engine.task_env, isolation=engine.isolation,
                   renderer=engine.renderer, kv=engine.kv, public=engine.public,
                   forge=engine.forge, flowctl=engine.flowctl,
                   stage_execution=engine.store.stage_execution)
