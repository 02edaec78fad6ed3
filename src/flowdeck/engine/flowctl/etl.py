"""What an `etl` task does: read rows, transform them, write them.

Locations are URLs:

- `file:///ABSOLUTE/PATH` — JSON (an array of objects) or CSV (a header line), by `format`
  or else the file's extension; as a target, the extension decides (`.csv`, else JSON);
- `http://` and `https://` — read only, the format from `format`, the extension or the
  response's Content-Type;
- `sqlite:///ABSOLUTE/PATH#TABLE` — rows as they are in the table; as a target the table is
  created from the rows' keys (columns the table lacks are added) and every row is inserted in
  one transaction.

`[flowctl.etl] locations` maps other prefixes onto these (`"s3://bucket" =
"file:///srv/bucket"`: `s3://bucket/data.csv` is `/srv/bucket/data.csv`; a `sqlite:///PATH`
replacement without `#TABLE` takes the rest of the URL as the table, so `"postgres://db" =
"sqlite:///srv/db.sqlite"` makes `postgres://db/staging` the table `staging`). An unmapped
scheme fails the task, naming the scheme and the setting.

Reads are bounded: a source larger than `max_bytes` or with more than `max_rows` rows is
refused with a message saying which limit and where to raise it.

`normalize` trims strings, turns empty strings into null and keys into snake_case; `none`
leaves rows as they are. Everything blocking runs in a worker thread.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import re
import sqlite3
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httpx

from flowdeck.engine.flowctl.settings import EtlSettings

HTTP_TIMEOUT_S = 30.0
SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
Row = dict[str, Any]


class EtlError(Exception):
    """Why an ETL step cannot be done, in words for the task's error."""


@dataclass(frozen=True, slots=True)
class Location:
    kind: str  # file | http | sqlite
    url: str  # after mapping
    path: Path | None = None
    table: str | None = None

    @property
    def extension(self) -> str:
        source = self.path.name if self.path is not None else urlsplit(self.url).path
        return os.path.splitext(source)[1].lower().lstrip(".")


def map_location(url: str, settings: EtlSettings) -> str:
    """`url` with the longest configured prefix replaced (at a path boundary)."""
    for prefix, replacement in settings.locations:
        if not url.startswith(prefix):
            continue
        rest = url[len(prefix):]
        if rest and not prefix.endswith("/") and rest[0] not in "/#?":
            continue  # "s3://bucket" does not map "s3://bucketeer/..."
        if replacement.startswith("sqlite:") and "#" not in replacement:
            table = rest.lstrip("/")
            return f"{replacement}#{table}" if table else replacement
        if rest.startswith("/") and replacement.endswith("/"):
            rest = rest[1:]
        return replacement + rest
    return url


def resolve(url: str, settings: EtlSettings, role: str) -> Location:
    """Where `url` (a source or target) really is; EtlError if it cannot be used."""
    mapped = map_location(url, settings)
    match = SCHEME.match(mapped)
    if match is None:
        raise EtlError(f"{role} '{url}' has no scheme (use file://, http(s)://, "
                       "sqlite:///PATH#TABLE or a prefix mapped in [flowctl.etl] locations)")
    scheme = match.group(1).lower()
    if scheme == "file":
        parts = urlsplit(mapped)
        if parts.netloc not in ("", "localhost"):
            raise EtlError(f"{role} '{url}': a file URL is file:///ABSOLUTE/PATH")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise EtlError(f"{role} '{url}': the file path must be absolute")
        return Location("file", mapped, path=Path(path))
    if scheme in ("http", "https"):
        return Location("http", mapped)
    if scheme == "sqlite":
        body = mapped[len("sqlite:"):]
        where, _, table = body.partition("#")
        if not where.startswith("///"):
            raise EtlError(f"{role} '{url}': use sqlite:///ABSOLUTE/PATH#TABLE")
        path = "/" + unquote(where).lstrip("/")
        table = unquote(table)
        if not table:
            raise EtlError(f"{role} '{url}' names no table (sqlite:///PATH#TABLE)")
        return Location("sqlite", mapped, path=Path(path), table=table)
    raise EtlError(
        f"{role} '{url}': no location for the scheme '{scheme}'; map it in the configuration "
        f"([flowctl.etl] locations, e.g. \"{scheme}://...\" = \"file:///...\" or "
        "\"sqlite:///PATH\")")


def _too_big(limit: int) -> EtlError:
    return EtlError(f"the source is larger than {limit} bytes, the limit ([flowctl.etl] "
                    "max_bytes); refusing to read it")


def _too_many(limit: int) -> EtlError:
    return EtlError(f"the source has more than {limit} rows, the limit ([flowctl.etl] "
                    "max_rows); refusing to read it")


def quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# -- reading ------------------------------------------------------------------------------------


def read_file(path: Path, max_bytes: int) -> bytes:
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > max_bytes:
                raise _too_big(max_bytes)
            data = handle.read(max_bytes + 1)
    except FileNotFoundError:
        raise EtlError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise EtlError(f"{path} is a directory, not a file") from None
    except OSError as exc:
        raise EtlError(f"cannot read {path}: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise _too_big(max_bytes)
    return data


async def fetch(url: str, max_bytes: int, timeout: float = HTTP_TIMEOUT_S
                ) -> tuple[bytes, str]:
    """The body of a GET (bounded) and its Content-Type."""
    chunks: list[bytes] = []
    total = 0
    try:
        async with httpx.AsyncClient(timeout=timeout, follow_redirects=True) as client, \
                client.stream("GET", url) as response:
            if response.status_code >= 400:
                raise EtlError(f"GET {url} answered {response.status_code}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_big(max_bytes)
            async for chunk in response.aiter_bytes():
                total += len(chunk)
                if total > max_bytes:
                    raise _too_big(max_bytes)
                chunks.append(chunk)
            content_type = response.headers.get("content-type", "")
    except httpx.HTTPError as exc:
        raise EtlError(f"GET {url} failed: {type(exc).__name__}: {exc}") from None
    return b"".join(chunks), content_type


def source_format(location: Location, given: str | None, content_type: str = "") -> str:
    if given:
        return given
    if location.extension in ("json", "csv"):
        return location.extension
    if "json" in content_type:
        return "json"
    if "csv" in content_type:
        return "csv"
    raise EtlError(f"cannot tell the format of '{location.url}': set payload.format to json "
                   "or csv")


def parse_rows(data: bytes, fmt: str, max_rows: int) -> list[Row]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise EtlError(f"the source is not UTF-8 text (byte {exc.start})") from None
    if fmt == "json":
        try:
            value = json.loads(text)
        except RecursionError:
            raise EtlError("the JSON source is nested too deeply") from None
        except ValueError as exc:
            raise EtlError(f"the source is not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise EtlError("a JSON source must be an array of objects")
        if len(value) > max_rows:
            raise _too_many(max_rows)
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise EtlError(f"row {i + 1} of the JSON source is not an object")
        return value
    rows: list[Row] = []
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        header = next(reader, None)
        if header is None:
            return []
        for number, record in enumerate(reader, start=2):
            if not record:
                continue
            if len(record) > len(header):
                raise EtlError(f"line {number} of the CSV source has more fields than its "
                               "header")
            if len(rows) >= max_rows:
                raise _too_many(max_rows)
            row: Row = dict(zip(header, record, strict=False))
            for key in header[len(record):]:
                row[key] = None
            rows.append(row)
    except csv.Error as exc:
        raise EtlError(f"the CSV source cannot be read: {exc}") from None
    return rows


def read_sqlite(path: Path, table: str, max_rows: int) -> list[Row]:
    if not path.is_file():
        raise EtlError(f"no SQLite database at {path}")
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error as exc:
        raise EtlError(f"cannot open {path}: {exc}") from None
    try:
        found = conn.execute("SELECT 1 FROM sqlite_master WHERE type IN ('table', 'view') "
                             "AND name = ?", (table,)).fetchone()
        if found is None:
            raise EtlError(f"no table '{table}' in {path}")
        cursor = conn.execute(f"SELECT * FROM {quote_name(table)} LIMIT ?", (max_rows + 1,))
        columns = [d[0] for d in cursor.description]
        records = cursor.fetchall()
    except sqlite3.Error as exc:
        raise EtlError(f"cannot read table '{table}' of {path}: {exc}") from None
    finally:
        conn.close()
    if len(records) > max_rows:
        raise _too_many(max_rows)
    return [dict(zip(columns, record, strict=True)) for record in records]


def read_local(location: Location, fmt: str | None, settings: EtlSettings
               ) -> tuple[list[Row], str]:
    """Rows of a file or SQLite source, and the format they were read as."""
    assert location.path is not None
    if location.kind == "sqlite":
        assert location.table is not None
        return read_sqlite(location.path, location.table, settings.max_rows), "sqlite"
    chosen = source_format(location, fmt)
    return parse_rows(read_file(location.path, settings.max_bytes), chosen,
                      settings.max_rows), chosen


# -- transforming -------------------------------------------------------------------------------


def snake_case(key: str) -> str:
    text = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", key.strip())
    text = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", text)
    return re.sub(r"[\W_]+", "_", text).strip("_").lower()


def normalize(rows: list[Row]) -> list[Row]:
    names: dict[str, str] = {}
    taken: dict[str, str] = {}
    for row in rows:
        for key in row:
            if key in names:
                continue
            name = snake_case(str(key)) or f"column_{len(names) + 1}"
            if name in taken:
                raise EtlError(f"normalize: the columns '{taken[name]}' and '{key}' would "
                               f"both be named '{name}'")
            names[key] = name
            taken[name] = key
    out: list[Row] = []
    for row in rows:
        clean: Row = {}
        for key, value in row.items():
            if isinstance(value, str):
                value = value.strip() or None
            clean[names[key]] = value
        out.append(clean)
    return out


def transform(rows: list[Row], how: str | None) -> list[Row]:
    if how == "normalize":
        return normalize(rows)
    return rows


# -- writing ------------------------------------------------------------------------------------


def columns_of(rows: list[Row]) -> list[str]:
    return list(dict.fromkeys(str(key) for row in rows for key in row))


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode()
    raise TypeError(f"{type(value).__name__} cannot be written as JSON")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, bytes | bytearray | memoryview):
        return str(_json_default(value))
    return str(value)


def _sql_value(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return value


def _replace_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def write_file(path: Path, rows: list[Row], fmt: str) -> int:
    if fmt == "csv":
        buffer = io.StringIO(newline="")
        columns = columns_of(rows)
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_cell(row.get(c)) for c in columns])
        data = buffer.getvalue().encode("utf-8")
    else:
        data = json.dumps(rows, ensure_ascii=False, indent=1,
                          default=_json_default).encode("utf-8")
    try:
        _replace_file(path, data)
    except OSError as exc:
        raise EtlError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(rows)


def write_sqlite(path: Path, table: str, rows: list[Row]) -> int:
    """Create the table (or add missing columns) and insert every row, in one transaction."""
    columns = columns_of(rows)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    except (OSError, sqlite3.Error) as exc:
        raise EtlError(f"cannot open {path}: {exc}") from None
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            existing = [r[1] for r in conn.execute(f"PRAGMA table_info({quote_name(table)})")]
            if columns and not existing:
                conn.execute(f"CREATE TABLE {quote_name(table)} "
                             f"({', '.join(quote_name(c) for c in columns)})")
            elif existing:
                known = {c.lower() for c in existing}
                for column in columns:
                    if column.lower() not in known:
                        conn.execute(f"ALTER TABLE {quote_name(table)} ADD COLUMN "
                                     f"{quote_name(column)}")
            if rows and columns:
                names = ", ".join(quote_name(c) for c in columns)
                marks = ", ".join("?" * len(columns))
                conn.executemany(
                    f"INSERT INTO {quote_name(table)} ({names}) VALUES ({marks})",
                    ([_sql_value(row.get(c)) for c in columns] for row in rows))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    except (sqlite3.Error, OverflowError) as exc:
        raise EtlError(f"cannot write table '{table}' of {path}: {exc}") from None
    finally:
        conn.close()
    return len(rows) if columns else 0


def target_format(location: Location, given: str | None) -> str:
    if location.extension in ("json", "csv"):
        return location.extension
    return given or "json"


def write_rows(location: Location, rows: list[Row], fmt: str | None) -> tuple[int, str]:
    """Rows written and the format they were written as."""
    assert location.path is not None
    if location.kind == "sqlite":
        assert location.table is not None
        return write_sqlite(location.path, location.table, rows), "sqlite"
    chosen = target_format(location, fmt)
    return write_file(location.path, rows, chosen), chosen
