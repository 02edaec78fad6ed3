"""The namespace key-value store with Kestra's value typing and optional TTL."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flowdeck.core.errors import ExpiredError, NotFoundError, ValidationError
from flowdeck.core.sanitize import valid_json
from flowdeck.core.timefmt import format_duration, format_instant, parse_duration, parse_instant
from flowdeck.engine.store import dumps

if TYPE_CHECKING:
    import aiosqlite

    from flowdeck.core.clock import Clock
    from flowdeck.engine.store import Store

#: A key, as messages show it; matched from the first character to the very last (`\Z`: a
#: trailing newline is not the end of a key).
KEY_PATTERN = "^[a-zA-Z0-9][a-zA-Z0-9._/-]*$"
KEY = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9._/-]*\Z")
KV_TYPES = ("STRING", "NUMBER", "BOOLEAN", "DATETIME", "DATE", "DURATION", "JSON")


@dataclass(slots=True)
class KVEntry:
    namespace: str
    key: str
    type: str
    value: Any
    description: str | None
    created: str
    updated: str
    expires: str | None
    revision: int

    def detail(self) -> dict[str, Any]:
        return {"type": self.type, "value": self.value, "revision": self.revision,
                "updated": self.updated}

    def summary(self) -> dict[str, Any]:
        return {"namespace": self.namespace, "key": self.key, "description": self.description,
                "creationDate": self.created, "updateDate": self.updated,
                "expirationDate": self.expires, "revision": self.revision}


def infer_type(value: Any) -> str:
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int | float):
        return "NUMBER"
    if isinstance(value, dict | list):
        return "JSON"
    if isinstance(value, datetime):
        return "DATETIME"
    if isinstance(value, date):
        return "DATE"
    if isinstance(value, timedelta):
        return "DURATION"
    return "STRING"


def parse_literal(text: str) -> tuple[str, Any]:
    """Type a PUT body the way Kestra's Ion reader does: a JSON literal (a quoted string,
    number, boolean, object or list), a bare date, instant or duration, or else a bare word."""
    stripped = text.strip()
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):  # JSONDecodeError, or an int of 4300+ digits
        pass
    else:
        if value is None:
            raise ValidationError([("value", "null is not a storable value")])
        if not _finite(value):
            raise ValidationError([("value", "NaN and Infinity are not storable numbers")])
        return infer_type(value), value
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", stripped):
        try:
            return "DATE", date.fromisoformat(stripped).isoformat()
        except ValueError:
            pass
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}T[0-9:.]+(Z|[+-]\d{2}:?\d{2})?", stripped):
        try:
            return "DATETIME", format_instant(parse_instant(stripped))
        except ValueError:
            pass
    if re.fullmatch(r"-?P[0-9A-Za-z.]+", stripped):
        try:
            return "DURATION", format_duration(parse_duration(stripped))
        except ValueError:
            pass
    return "STRING", _bare_text(stripped)


def _bare_text(stripped: str) -> str:
    """Text that is no JSON value: Kestra's Ion reader takes a bare word (`hello`) or a
    single-quoted symbol (`'hello world'`) as a string; flowdeck keeps the whole text."""
    if not stripped:
        raise ValidationError([("value", "the value is empty; send a JSON value or a word")])
    if len(stripped) >= 2 and stripped[0] == stripped[-1] == "'":
        return stripped[1:-1]
    if stripped[0] in "{[\"" or re.match(r"\d{4}-\d{2}-\d{2}", stripped):
        # A broken JSON value or date is a mistake to report, not a word to store.
        raise ValidationError([("value", f"invalid JSON value for: {stripped[:80]!r}")])
    return stripped


def _finite(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    return True


def _problem(message: str) -> ValidationError:
    return ValidationError([("value", message)])


def _normalise(value: Any, kv_type: str) -> Any:
    """The stored form of `value` as `kv_type`; ValidationError when it is not one."""
    if value is None:
        raise _problem("null is not a storable value")
    shown = repr(value)  # problems quote the value as it was given, before any parsing
    if isinstance(value, str) and kv_type in ("NUMBER", "BOOLEAN", "JSON"):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise _problem(f"{value!r} is not a valid {kv_type}") from None
    if kv_type == "STRING":
        if isinstance(value, str):
            return value
        if isinstance(value, datetime):
            return format_instant(value)
        if isinstance(value, date):
            return value.isoformat()
        if isinstance(value, timedelta):
            return format_duration(value)
        if not _finite(value):
            raise _problem("NaN and Infinity are not storable numbers")
        try:
            return dumps(value)
        except (TypeError, ValueError):
            raise _problem(f"a {type(value).__name__} value cannot be stored") from None
    if kv_type == "NUMBER":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _problem(f"{shown} is not a number")
        if not math.isfinite(value):
            raise _problem(f"{shown} is not a finite number")
        return value
    if kv_type == "BOOLEAN":
        if not isinstance(value, bool):
            raise _problem(f"{shown} is not true or false")
        return value
    if kv_type == "JSON":
        if not _finite(value):
            raise _problem("NaN and Infinity are not storable numbers")
        try:
            dumps(value)
        except (TypeError, ValueError):
            raise _problem(f"a {type(value).__name__} value is not JSON") from None
        return value
    if kv_type == "DATETIME":
        if isinstance(value, datetime):
            return format_instant(value)
        try:
            return format_instant(parse_instant(str(value).strip()))
        except ValueError:
            raise _problem(f"{value!r} is not an ISO-8601 date-time") from None
    if kv_type == "DATE":
        if isinstance(value, datetime):
            return value.date().isoformat()
        if isinstance(value, date):
            return value.isoformat()
        try:
            return date.fromisoformat(str(value).strip()).isoformat()
        except ValueError:
            raise _problem(f"{value!r} is not a date like 2025-06-01") from None
    if kv_type == "DURATION":
        if isinstance(value, timedelta):
            return format_duration(value)
        try:
            return format_duration(parse_duration(str(value).strip()))
        except ValueError:
            raise _problem(f"{value!r} is not an ISO-8601 duration like PT5M") from None
    return value  # pragma: no cover - kv_type is checked against KV_TYPES first


class KVStore:
    def __init__(self, store: Store, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    @staticmethod
    def check_key(key: str) -> None:
        if not isinstance(key, str) or not KEY.fullmatch(key):
            raise ValidationError([("key", f"'{key}' must match {KEY_PATTERN}")])

    async def put(self, namespace: str, key: str, value: Any, *, ttl: timedelta | None = None,
                  kv_type: str | None = None, description: str | None = None) -> KVEntry:
        self.check_key(key)
        kind = (kv_type or infer_type(value)).upper()
        if kind not in KV_TYPES:
            raise ValidationError([("type", f"unknown KV type '{kind}'")])
        value = valid_json(_normalise(valid_json(value), kind))
        description = valid_json(description)
        if ttl is not None and ttl <= timedelta(0):
            raise ValidationError([("ttl", f"must be a positive duration, got "
                                           f"{format_duration(ttl)}")])
        now = format_instant(self.clock.now())
        expires = format_instant(self.clock.now() + ttl) if ttl is not None else None

        async def op(conn: aiosqlite.Connection) -> None:
            await conn.execute(
                "INSERT INTO kv(namespace, key, type, value, description, created, updated,"
                " expires, revision) VALUES (?,?,?,?,?,?,?,?,1) "
                "ON CONFLICT(namespace, key) DO UPDATE SET type=excluded.type,"
                " value=excluded.value, description=excluded.description,"
                " updated=excluded.updated, expires=excluded.expires,"
                " revision=kv.revision + 1",
                (namespace, key, kind, dumps(value), description, now, now, expires))

        await self.store.run(op)
        entry = await self.find(namespace, key)
        assert entry is not None
        return entry

    async def _row(self, namespace: str, key: str) -> KVEntry | None:
        row = await self.store.fetchone(
            "SELECT namespace, key, type, value, description, created, updated, expires, revision"
            " FROM kv WHERE namespace = ? AND key = ?", (namespace, key))
        if row is None:
            return None
        return KVEntry(row[0], row[1], row[2], json.loads(row[3]), row[4], row[5], row[6],
                       row[7], row[8])

    def _expired(self, entry: KVEntry) -> bool:
        return entry.expires is not None and entry.expires <= format_instant(self.clock.now())

    async def find(self, namespace: str, key: str) -> KVEntry | None:
        """The live entry, or None when missing or expired."""
        self.check_key(key)
        entry = await self._row(namespace, key)
        if entry is None or self._expired(entry):
            return None
        return entry

    async def get(self, namespace: str, key: str) -> KVEntry:
        self.check_key(key)
        entry = await self._row(namespace, key)
        if entry is None:
            raise NotFoundError(f"no key '{key}' in namespace '{namespace}'")
        if self._expired(entry):
            raise ExpiredError(f"key '{key}' in namespace '{namespace}' has expired")
        return entry

    async def exists(self, namespace: str, key: str) -> bool:
        return await self.find(namespace, key) is not None

    async def delete(self, namespace: str, key: str) -> bool:
        self.check_key(key)

        async def op(conn: aiosqlite.Connection) -> bool:
            cursor = await conn.execute("DELETE FROM kv WHERE namespace = ? AND key = ?",
                                        (namespace, key))
            return cursor.rowcount > 0

        return await self.store.run(op)

    async def list(self, namespace: str | None = None) -> list[KVEntry]:
        now = format_instant(self.clock.now())
        sql = ("SELECT namespace, key, type, value, description, created, updated, expires,"
               " revision FROM kv WHERE (expires IS NULL OR expires > ?)")
        params: list[Any] = [now]
        if namespace is not None:
            sql += " AND namespace = ?"
            params.append(namespace)
        rows = await self.store.fetchall(sql + " ORDER BY namespace, key", params)
        return [KVEntry(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5], r[6], r[7], r[8])
                for r in rows]
