"""Files of an execution, as Kestra serves them (`GET /executions/{id}/file`, `/file/metas`,
`/file/preview`): the files uploaded as its FILE inputs.

A path is served only when it is one of the execution's own input values and the file lies in
the uploads directory: any other path is "no such file", so no request reads elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse
from urllib.request import url2pathname

from flowdeck.core.errors import NotFoundError, ValidationError

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine

#: At most this much of a file is read for a preview.
PREVIEW_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class Preview:
    extension: str
    content: str


def _values(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [text for item in value for text in _values(item)]
    return []


async def execution_file(engine: Engine, execution_id: str, uri: str) -> Path:
    """The local file behind `uri`, an uploaded FILE input of the execution."""
    execution = await engine.get_execution(execution_id)
    missing = NotFoundError(f"no file '{uri}' in execution {execution_id}")
    if uri not in {text for value in execution.inputs.values() for text in _values(value)}:
        raise missing
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise missing
    target = Path(os.path.realpath(url2pathname(parsed.path)))
    root = Path(os.path.realpath(engine.uploads_dir))
    if not target.is_relative_to(root) or not target.is_file():
        raise missing
    return target


async def preview(engine: Engine, execution_id: str, uri: str, max_rows: int) -> Preview:
    """The first `max_rows` lines of a text file (a file that is no UTF-8 text has none)."""
    path = await execution_file(engine, execution_id, uri)
    with path.open("rb") as handle:
        head = handle.read(PREVIEW_BYTES)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        text = head[:exc.start].decode("utf-8")
        if not text:
            raise ValidationError([("path", "this file is not text: no preview")]) from None
    lines = text.splitlines(keepends=True)[:max_rows]
    return Preview(path.suffix.lstrip(".").lower() or "txt", "".join(lines))
