"""KV tasks: `kv.Set`, `kv.Get` and `kv.Delete` on the namespace key-value store."""

from __future__ import annotations

from typing import Any

from flowdeck.engine.tasks.base import Duration, RunnableTask, TaskContext, TaskFailure


class Set(RunnableTask):
    key: str
    value: Any
    namespace: str | None = None
    overwrite: bool = True
    ttl: Duration | None = None
    kvType: str | None = None
    kvDescription: str | None = None

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        namespace = str(ctx.render(self.namespace)) if self.namespace else ctx.execution.namespace
        key = str(ctx.render(self.key))
        kv = ctx.services.kv
        if not self.overwrite and await kv.exists(namespace, key):
            raise TaskFailure(f"key '{key}' already exists in '{namespace}' and overwrite is false")
        await kv.put(namespace, key, ctx.render(self.value), ttl=self.ttl, kv_type=self.kvType,
                     description=self.kvDescription)
        return None


class Get(RunnableTask):
    key: str
    namespace: str | None = None
    errorOnMissing: bool = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        namespace = str(ctx.render(self.namespace)) if self.namespace else ctx.execution.namespace
        key = str(ctx.render(self.key))
        entry = await ctx.services.kv.find(namespace, key)
        if entry is None:
            if self.errorOnMissing:
                raise TaskFailure(f"no key '{key}' in namespace '{namespace}'")
            return {"value": None}
        return {"value": entry.value}


class Delete(RunnableTask):
    key: str
    namespace: str | None = None
    errorOnMissing: bool = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        namespace = str(ctx.render(self.namespace)) if self.namespace else ctx.execution.namespace
        key = str(ctx.render(self.key))
        deleted = await ctx.services.kv.delete(namespace, key)
        if not deleted and self.errorOnMissing:
            raise TaskFailure(f"no key '{key}' in namespace '{namespace}'")
        return {"deleted": deleted}


TASKS: dict[str, type[RunnableTask]] = {
    "io.kestra.plugin.core.kv.Set": Set,
    "io.kestra.plugin.core.kv.Get": Get,
    "io.kestra.plugin.core.kv.Delete": Delete,
}
