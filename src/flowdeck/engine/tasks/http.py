"""`io.kestra.plugin.core.http.Request`: one HTTP call with httpx; non-2xx fails unless allowed."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import Field

from flowdeck.engine.tasks.base import Duration, RunnableTask, TaskContext, TaskFailure


class Request(RunnableTask):
    uri: str
    method: str = "GET"
    body: Any = None
    contentType: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    formData: dict[str, Any] | None = None
    allowFailed: bool = False
    options: dict[str, Any] = Field(default_factory=dict)
    requestTimeout: Duration | None = None

    safe_to_rerun = False

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        uri = str(ctx.render(self.uri))
        method = str(ctx.render(self.method)).upper()
        headers = {str(k): str(v) for k, v in ctx.render(self.headers).items()}
        if self.contentType:
            headers.setdefault("Content-Type", str(ctx.render(self.contentType)))
        content: bytes | None = None
        data = None
        if self.formData is not None:
            data = {k: str(v) for k, v in ctx.render(self.formData).items()}
        elif self.body is not None:
            rendered = ctx.render(self.body)
            content = (rendered if isinstance(rendered, str) else json.dumps(rendered)).encode()
        timeout = self.requestTimeout.total_seconds() if self.requestTimeout else 30.0
        try:
            async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client:
                resp = await client.request(method, uri, headers=headers, content=content,
                                            data=data)
        except httpx.HTTPError as exc:
            raise TaskFailure(f"{method} {uri} failed: {exc.__class__.__name__}: {exc}") from None
        text = resp.text
        body: Any = text
        if "json" in resp.headers.get("content-type", ""):
            try:
                body = resp.json()
            except ValueError:
                body = text
        outputs = {
            "uri": str(resp.url),
            "code": resp.status_code,
            "headers": {k: resp.headers.get_list(k) for k in resp.headers},
            "body": body,
            "length": len(resp.content),
        }
        if resp.status_code >= 400 and not self.allowFailed:
            ctx.task_run.outputs = outputs
            raise TaskFailure(f"{method} {uri} answered {resp.status_code}")
        return outputs


TASKS: dict[str, type[RunnableTask]] = {"io.kestra.plugin.core.http.Request": Request}
