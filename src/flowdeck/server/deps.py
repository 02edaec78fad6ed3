"""What routes of any dialect share: the engine, query parameters, bodies and uploads.

Every parser answers a malformed value with an engine error that names the parameter (400 for a
query value, 422 for a body), which the serving dialect renders.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import QueryParams, UploadFile
from starlette.formparsers import MultiPartException

from flowdeck.core.errors import BadRequestError, ValidationError
from flowdeck.core.ids import new_id
from flowdeck.core.sanitize import valid_text
from flowdeck.core.timefmt import parse_duration, parse_instant
from flowdeck.engine.engine import Engine
from flowdeck.engine.webhook_triggers import WebhookCall
from flowdeck.server.auth import client_ip
from flowdeck.server.jsonbody import JsonRefused, parse_json, parse_json_async


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def _engine(request: Request) -> Engine:
    """`get_engine` as a dependency: async, so FastAPI calls it inline instead of handing
    every request to its thread pool (a sync dependency costs a thread hop per request)."""
    return get_engine(request)


EngineDep = Annotated[Engine, Depends(_engine)]


# -- query parameters --------------------------------------------------------------------------


def int_param(params: QueryParams, name: str, default: int, low: int = 1,
              high: int = 10_000) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(f"query parameter '{name}' must be an integer, got '{raw}'") from None
    if not low <= value <= high:
        raise BadRequestError(f"query parameter '{name}' must be between {low} and {high}")
    return value


def bool_param(params: QueryParams, name: str, default: bool = False) -> bool:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in ("true", "1", "yes"):
        return True
    if raw.lower() in ("false", "0", "no"):
        return False
    raise BadRequestError(f"query parameter '{name}' must be true or false, got '{raw}'")


def instant_param(name: str, raw: str) -> datetime:
    try:
        return parse_instant(raw)
    except ValueError:
        raise BadRequestError(f"'{name}' must be an ISO-8601 date-time, got '{raw}'") from None


def time_range(raw: str, now: datetime) -> datetime:
    try:
        return now - parse_duration(raw)
    except ValueError:
        raise BadRequestError(f"'timeRange' must be an ISO-8601 duration like PT24H, "
                              f"got '{raw}'") from None


def attachment(filename: str) -> str:
    """A `Content-Disposition` for a download named `filename`, whatever its characters: an
    ASCII `filename` for old clients and the exact name as RFC 5987's `filename*`."""
    fallback = "".join(c if " " <= c < "\x7f" and c not in '"\\' else "_" for c in filename)
    encoded = quote(valid_text(filename), safe="!#$&+-.^_`|~")
    if fallback == filename:
        return f'attachment; filename="{filename}"'
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


# -- bodies ------------------------------------------------------------------------------------


async def json_object(request: Request, where: str = "body") -> dict[str, Any]:
    """The optional JSON object body (an empty body is `{}`), parsed within the bounds of
    `server/jsonbody.py`."""
    raw = await request.body()
    if not raw.strip():
        return {}
    body = await parse_json_async(raw, where=where)
    if not isinstance(body, dict):
        raise ValidationError([(where, "must be a JSON object")])
    return body


async def json_value(request: Request, where: str = "body") -> Any:
    """Any JSON body, bounded (`server/jsonbody.py`); None when the body is empty."""
    raw = await request.body()
    if not raw.strip():
        return None
    return await parse_json_async(raw, where=where)


def webhook_body(raw: bytes) -> Any:
    """Kestra's rule: a JSON object, else a JSON array, else the raw text; null when empty.
    JSON past the bounds of `server/jsonbody.py` (too deep, a huge number) is refused (422)
    rather than kept as text."""
    if not raw:
        return None
    if raw.lstrip()[:1] in (b"{", b"["):
        try:
            parsed = parse_json(raw)
        except JsonRefused:
            raise
        except ValidationError:
            parsed = None
        if isinstance(parsed, dict | list):
            return parsed
    return valid_text(raw.decode("utf-8", "replace"))


def _multimap(items: list[tuple[str, str]], lower: bool = False) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in items:
        out.setdefault(name.lower() if lower else name, []).append(value)
    return out


def webhook_call(request: Request) -> WebhookCall:
    """A webhook trigger's call as the engine takes it: headers, query, caller, and the body
    (read only if the engine asks for it, once the key matched)."""

    async def read_body() -> Any:
        return webhook_body(await request.body())

    return WebhookCall(headers=_multimap(list(request.headers.items()), lower=True),
                       parameters=_multimap(request.query_params.multi_items()),
                       client=client_ip(request), read_body=read_body)


# -- uploads -----------------------------------------------------------------------------------


async def read_inputs(request: Request, upload_dir: Path) -> dict[str, Any]:
    """Execution or resume inputs from an optional multipart/urlencoded (or JSON) body.

    A file part becomes a FILE input whose value is the stored file's `file://` URI.
    """
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        await _check_multipart_complete(request, content_type)
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        return await _form_inputs(request, upload_dir)
    if content_type.startswith("application/json"):
        raw = await request.body()
        if not raw.strip():
            return {}
        body = await parse_json_async(raw)
        if not isinstance(body, dict):
            raise ValidationError([("body", "a JSON body must be an object of input values")])
        return body
    return {}


async def _form_inputs(request: Request, upload_dir: Path) -> dict[str, Any]:
    try:
        form = await request.form()
    except MultiPartException as exc:
        raise BadRequestError(f"malformed multipart body: {exc.message}") from None
    inputs: dict[str, Any] = {}
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                folder = upload_dir / new_id()
                folder.mkdir(parents=True, exist_ok=True)
                target = folder / Path(value.filename or name).name
                target.write_bytes(await value.read())
                inputs[name] = target.as_uri()
            else:
                inputs[name] = value
    finally:
        await form.close()
    return inputs


async def _check_multipart_complete(request: Request, content_type: str) -> None:
    """A multipart body cut short would otherwise parse as fewer inputs, silently."""
    boundary = ""
    for part in content_type.split(";")[1:]:
        key, _, value = part.strip().partition("=")
        if key.lower() == "boundary":
            boundary = value.strip('"')
    body = await request.body()
    if not body.strip():
        return
    if not boundary or f"--{boundary}--".encode() not in body[-(len(boundary) + 16):]:
        raise BadRequestError("malformed multipart body: it does not end with its closing "
                              "boundary (was the upload cut short?)")


class Uploads:
    """A per-request folder for uploaded FILE inputs, removed again if the request fails."""

    def __init__(self, engine: Engine) -> None:
        self.path = Path(engine.data_dir) / "uploads" / new_id()

    async def read(self, request: Request) -> dict[str, Any]:
        try:
            return await read_inputs(request, self.path)
        finally:
            await request.close()  # the multipart parser's spooled temporary files

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
