"""SECRET inputs: masked wherever an execution is read or logged, clear only for its tasks.

An execution's document (API, deck, CLI, events) shows a SECRET input as `******`, as Kestra
does. The clear values live in the `execution_secrets` table, written in the same transaction
that creates the execution, so a restarted engine can resume it; the row is deleted when the
execution ends (a later restart of it is refused, a replay must be given the secrets again).
While it runs, its tasks see the clear values through `{{ inputs.x }}`; every occurrence of
them in log lines, task outputs, flow outputs and approval texts is masked.

Webhook callers' credential headers (Authorization, Cookie, ...) are never kept in trigger
data.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import ConflictError, FlowdeckError, InvalidInputsError

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.engine.inputs import InputDef
    from flowdeck.engine.store import Store

MASK = "******"
#: Request headers that carry credentials: not stored with an execution's trigger.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key",
                                "x-auth-token"})
#: Lines of a multi-line secret shorter than this are not searched for on their own.
MIN_LINE = 4


def secret_ids(declared: Iterable[InputDef]) -> list[str]:
    return [d.id for d in declared if d.type == "SECRET"]


def split(declared: Iterable[InputDef], resolved: dict[str, Any]
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the inputs as stored and shown, the clear SECRET values)."""
    ids = [i for i in secret_ids(declared) if i in resolved]
    if not ids:
        return resolved, {}
    shown = {k: (MASK if k in ids else v) for k, v in resolved.items()}
    return shown, {k: resolved[k] for k in ids}


def check_given_again(declared: Iterable[InputDef], given: Mapping[str, Any]) -> None:
    """A replay from a stored (masked) document: every SECRET input must be given again."""
    missing = [i for i in secret_ids(declared) if given.get(i) == MASK]
    if missing:
        raise InvalidInputsError([(f"inputs.{i}", "a SECRET input is not kept once its "
                                                  "execution ends: give it again to replay")
                                  for i in missing])


def without_credentials(trigger: dict[str, Any] | None) -> dict[str, Any] | None:
    """Trigger data without the caller's credential headers."""
    if not trigger or not isinstance(trigger.get("variables"), dict):
        return trigger
    headers = trigger["variables"].get("headers")
    if not isinstance(headers, dict):
        return trigger
    kept = {k: v for k, v in headers.items()
            if not (isinstance(k, str) and k.lower() in CREDENTIAL_HEADERS)}
    if len(kept) == len(headers):
        return trigger
    return {**trigger, "variables": {**trigger["variables"], "headers": kept}}


class Masker:
    """Replaces every occurrence of some secret values by `MASK` in text and JSON values."""

    __slots__ = ("_pattern",)

    def __init__(self, values: Iterable[Any]) -> None:
        needles: set[str] = set()
        for value in values:
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            if not text:
                continue
            for form in (text, json.dumps(text, ensure_ascii=False)[1:-1]):
                needles.add(form)
                needles.update(line for line in form.splitlines() if len(line) >= MIN_LINE)
        ordered = sorted(needles, key=len, reverse=True)  # the longest form wins
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __bool__(self) -> bool:
        return self._pattern is not None

    def text(self, text: str) -> str:
        pattern = self._pattern
        return text if pattern is None else pattern.sub(MASK, text)

    def value(self, value: Any) -> Any:
        """`value` with every string (and mapping key) masked."""
        if self._pattern is None:
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.value(k): self.value(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.value(v) for v in value]
        if isinstance(value, tuple):
            return tuple(self.value(v) for v in value)
        return value


NO_MASK = Masker(())


class SecretInputs:
    """Where the clear values of SECRET inputs live while their execution may still run."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def insert(self, conn: aiosqlite.Connection, execution_id: str,
                     values: dict[str, Any]) -> None:
        """Inside the operation that inserts the execution (one transaction)."""
        if values:
            await conn.execute(
                "INSERT OR REPLACE INTO execution_secrets(execution_id, doc) VALUES (?, ?)",
                (execution_id, json.dumps(values, ensure_ascii=False)))

    async def load(self, execution_id: str) -> dict[str, Any] | None:
        row = await self.store.fetchone(
            "SELECT doc FROM execution_secrets WHERE execution_id = ?", (execution_id,))
        return None if row is None else dict(json.loads(row[0]))

    async def require(self, execution_id: str, declared: Iterable[InputDef]) -> None:
        """Refuse to restart an execution whose secrets are gone."""
        ids = secret_ids(declared)
        if ids and await self.load(execution_id) is None:
            raise ConflictError(
                f"execution {execution_id} had SECRET inputs ({', '.join(ids)}); their values "
                "are deleted when an execution ends, so it cannot restart: replay it with "
                "the secrets given again")

    async def store_again(self, execution_id: str, values: dict[str, Any]) -> None:
        async def op(conn: aiosqlite.Connection) -> None:
            await self.insert(conn, execution_id, values)

        await self.store.run(op)

    def forget(self, execution_id: str) -> None:
        """Delete the clear values with the next commit (nobody waits for it; should the
        store be closing, recovery deletes them at the next start)."""
        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute("DELETE FROM execution_secrets WHERE execution_id = ?",
                               (execution_id,))

        with contextlib.suppress(FlowdeckError):
            self.store.submit(op).add_done_callback(_consume)


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()  # retrieved: never "exception was never retrieved"
