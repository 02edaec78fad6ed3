"""Agent task types: write a message per row, check it against rules, deliver what passed.

- `flowdeck.agents.Personalise` renders `template` once per row (the sandboxed template
  engine; `row` is the row, `index` its position, and the flow's `inputs`, `vars`, ... are
  there too) and outputs `rows`: the `keep` fields of each row plus the message
  (`generated_content`). `template` is rendered per row only, never as a task property, so a
  value in the data is never itself evaluated.
- `flowdeck.agents.CheckCompliance` checks each row's message against `rules` written in the
  flow (maximum length, required text such as an opt-out line, forbidden phrases, the phone
  number's format) and sets `compliance_status` to `passed` or `failed`; `findings` says why.
- `flowdeck.agents.Deliver` hands every row that passed to the delivery channel
  (`[public.delivery]`: an HTTP endpoint, else the local outbox) and outputs the API's result
  shape `{successCount, failedCount, results: [{customerId, status, messageId}]}`, status
  `sent`, `failed` (the endpoint refused or could not be reached) or `blocked` (the row failed
  compliance and was not sent). Delivering again (a crash, a restart) never resends a message
  that was sent.

`rows` may be a list of objects or its JSON text (what `{{ outputs.x.rows }}` renders to).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdeck.core.errors import FlowdeckError
from flowdeck.engine.tasks.base import RunnableTask, TaskContext, TaskFailure

#: Rows one task handles (the public API keeps 100; flows run directly get some room).
MAX_ROWS = 10_000
MAX_MESSAGE = 10_000
#: A phone number longer than this fails its check without meeting the pattern.
MAX_PHONE = 64
#: Rows handled between two yields to the event loop (rendering is CPU work).
YIELD_EVERY = 100
CONTENT = "generated_content"
STATUS = "compliance_status"


def rows_of(value: Any, what: str = "rows") -> list[dict[str, Any]]:
    """A list of row objects from a list or its JSON text; TaskFailure saying what is wrong."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else []
        except (ValueError, RecursionError):
            raise TaskFailure(f"{what} must be a list of objects or its JSON text") from None
    if value is None:
        value = []
    if not isinstance(value, list):
        raise TaskFailure(f"{what} must be a list of objects, got {type(value).__name__}")
    if len(value) > MAX_ROWS:
        raise TaskFailure(f"{what}: at most {MAX_ROWS} rows, got {len(value)}")
    return [r if isinstance(r, dict) else {"value": r} for r in value]


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


class Personalise(RunnableTask):
    rows: Any
    template: str = Field(min_length=1)
    keep: list[str] = Field(default_factory=lambda: ["customerId", "name", "phone"])
    contentField: str = CONTENT

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        rows = rows_of(ctx.render(self.rows))
        base = dict(ctx.render_context())
        renderer = ctx.services.renderer
        out: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # a long batch never holds the event loop
            try:
                text = str(renderer.render(self.template, {**base, "row": row,
                                                           "index": index}))
            except FlowdeckError as exc:
                raise TaskFailure(f"row {index + 1}: {exc}") from None
            text = text.strip()
            if len(text) > MAX_MESSAGE:
                text = text[:MAX_MESSAGE]
            kept = {field: row.get(field) for field in self.keep}
            kept[self.contentField] = text
            out.append(kept)
        ctx.log("INFO", f"wrote {len(out)} message(s)")
        return {"rows": out, "count": len(out)}


class ComplianceRules(BaseModel):
    """The rules a message must meet; the flow holds them so its owner edits them there."""

    model_config = ConfigDict(extra="forbid")

    maxLength: int | None = Field(default=None, ge=1)
    minLength: int | None = Field(default=None, ge=0)
    #: Each must appear in the message (e.g. the opt-out line).
    requiredText: list[str] = Field(default_factory=list)
    #: None may appear in the message.
    forbiddenPhrases: list[str] = Field(default_factory=list)
    #: The phone number must match this (whole) regular expression.
    phonePattern: str | None = None
    caseSensitive: bool = False

    @field_validator("phonePattern")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc}") from None
        return value

    def problems(self, content: str, phone: str | None) -> list[str]:
        found: list[str] = []
        if self.maxLength is not None and len(content) > self.maxLength:
            found.append(f"longer than {self.maxLength} characters ({len(content)})")
        if self.minLength is not None and len(content) < self.minLength:
            found.append(f"shorter than {self.minLength} characters ({len(content)})")
        haystack = content if self.caseSensitive else content.casefold()
        for text in self.requiredText:
            if (text if self.caseSensitive else text.casefold()) not in haystack:
                found.append(f"missing required text {text!r}")
        for phrase in self.forbiddenPhrases:
            if (phrase if self.caseSensitive else phrase.casefold()) in haystack:
                found.append(f"contains forbidden phrase {phrase!r}")
        if self.phonePattern is not None:
            number = (phone or "").strip()
            if not number:
                found.append("no phone number")
            elif len(number) > MAX_PHONE or re.fullmatch(self.phonePattern, number) is None:
                found.append(f"phone number {number[:MAX_PHONE]!r} is not in the expected "
                             "format")
        return found


class CheckCompliance(RunnableTask):
    rows: Any
    rules: ComplianceRules = Field(default_factory=ComplianceRules)
    contentField: str = CONTENT
    phoneField: str = "phone"
    statusField: str = STATUS
    idField: str = "customerId"

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        rows = rows_of(ctx.render(self.rows))
        out: list[dict[str, Any]] = []
        findings: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            if index and index % YIELD_EVERY == 0:
                await asyncio.sleep(0)
            phone = row.get(self.phoneField)
            problems = self.rules.problems(_text(row.get(self.contentField)),
                                           None if phone is None else _text(phone))
            out.append({**row, self.statusField: "failed" if problems else "passed"})
            if problems:
                findings.append({"row": index + 1, self.idField: row.get(self.idField),
                                 "problems": problems})
        failed = len(findings)
        ctx.log("WARN" if failed else "INFO",
                f"{len(out) - failed} message(s) passed, {failed} failed compliance")
        for finding in findings:
            ctx.log("WARN", f"row {finding['row']}: " + "; ".join(finding["problems"]))
        return {"rows": out, "passed": len(out) - failed, "failed": failed,
                "findings": findings}


class Deliver(RunnableTask):
    rows: Any
    channel: str = Field(default="whatsapp", min_length=1, max_length=50)
    contentField: str = CONTENT
    phoneField: str = "phone"
    idField: str = "customerId"
    statusField: str = STATUS
    #: Send only rows whose `statusField` is `passed` (the rest are `blocked`).
    onlyPassed: bool = True

    async def execute(self, ctx: TaskContext) -> dict[str, Any] | None:
        from flowdeck.engine.public.messages import Outgoing

        rows = rows_of(ctx.render(self.rows))
        items: list[Outgoing] = []
        for index, row in enumerate(rows):
            if self.onlyPassed and row.get(self.statusField) != "passed":
                continue
            customer, phone = row.get(self.idField), row.get(self.phoneField)
            items.append(Outgoing(index, None if customer is None else _text(customer),
                                  None if phone is None else _text(phone),
                                  _text(row.get(self.contentField))))
        execution = ctx.execution
        messages = await ctx.services.public.messages.deliver(
            execution_id=execution.id, task_run_id=ctx.task_run.id,
            namespace=execution.namespace, flow_id=execution.flow_id, channel=self.channel,
            items=items)
        by_index = {item.row_index: message for item, message in zip(items, messages,
                                                                      strict=True)}
        results: list[dict[str, Any]] = []
        for index, row in enumerate(rows):
            message = by_index.get(index)
            if message is None:
                results.append({"customerId": row.get(self.idField), "status": "blocked",
                                "messageId": None})
            else:
                results.append({"customerId": row.get(self.idField), "status": message.status,
                                "messageId": message.message_id})
                if message.status == "failed":
                    ctx.log("ERROR", f"row {index + 1}: delivery failed: {message.error}")
        sent = sum(1 for r in results if r["status"] == "sent")
        failed = sum(1 for r in results if r["status"] == "failed")
        ctx.log("WARN" if failed else "INFO",
                f"{sent} message(s) sent, {failed} failed, {len(results) - sent - failed} "
                f"blocked ({ctx.services.public.messages.transport} delivery)")
        outputs: dict[str, Any] = {"successCount": sent, "failedCount": len(results) - sent,
                                   "results": results}
        if failed:
            outputs["_warning"] = True
        return outputs


TASKS: dict[str, type[RunnableTask]] = {
    "flowdeck.agents.Personalise": Personalise,
    "flowdeck.agents.CheckCompliance": CheckCompliance,
    "flowdeck.agents.Deliver": Deliver,
}
