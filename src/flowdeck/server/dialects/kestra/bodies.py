"""JSON bodies of the Kestra routes that take lists of ids, flows or triggers.

A malformed body is a 422 naming what was expected; an empty one is an empty list where the
route accepts none.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from flowdeck.core.errors import ValidationError


async def json_value(request: Request, expected: str) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise ValidationError([("body", f"invalid JSON; expected {expected}")]) from None


async def id_list(request: Request) -> list[str]:
    """`["id", ...]` (Kestra's bulk-by-ids body)."""
    body = await json_value(request, '["id", ...]')
    if body is None:
        return []
    if not isinstance(body, list) or not all(isinstance(i, str) and i for i in body):
        raise ValidationError([("body", 'must be a JSON list of ids: ["id", ...]')])
    return body


async def flow_keys(request: Request) -> list[tuple[str, str]]:
    """`[{"namespace", "id"}, ...]` (Kestra's flows-by-ids body)."""
    body = await json_value(request, '[{"namespace": ..., "id": ...}]')
    if body is None:
        return []
    if not isinstance(body, list):
        raise ValidationError([("body", 'must be a JSON list of {"namespace", "id"}')])
    keys = []
    for index, item in enumerate(body):
        ns = item.get("namespace") if isinstance(item, dict) else None
        flow_id = item.get("id") if isinstance(item, dict) else None
        if not isinstance(ns, str) or not isinstance(flow_id, str):
            raise ValidationError([(f"[{index}]", 'must be {"namespace": ..., "id": ...}')])
        keys.append((ns, flow_id))
    return keys


def label_pairs(items: Any, where: str = "body") -> list[tuple[str, str]]:
    """`[{"key", "value"}, ...]` as (key, value) pairs."""
    if not isinstance(items, list):
        raise ValidationError([(where, 'must be a JSON list of {"key": ..., "value": ...}')])
    pairs = []
    for index, item in enumerate(items):
        key = item.get("key") if isinstance(item, dict) else None
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(key, str) or not key.strip() or not isinstance(value, str):
            raise ValidationError([(f"{where}[{index}]",
                                    'must be {"key": "...", "value": "..."}')])
        pairs.append((key, value))
    return pairs
