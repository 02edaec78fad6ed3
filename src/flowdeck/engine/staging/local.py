"""The `local` staging provider: an environment is a directory on this machine.

`<root>/<name>/environment.json` holds the environment's record (name, id, client_name,
source_environment, url, status, created_at, provider) and, unless the clone skipped it,
`<root>/<name>/database.sqlite3` is a copy of the source environment's database made with
SQLite's online backup API (`sqlite3.Connection.backup`, in one step): a consistent snapshot
even while another process or thread writes the source.

Source environments are configured (`sources`, default `production`); one that has no directory
yet is created on first use, with a small seeded database unless the configuration points it at
an existing database file. An existing staging environment can be a source too.

Creating a directory is the atomic "name is free" check: two clones onto one name cannot both
win, and a clone that fails removes what it made, so a failed clone changes nothing. A delete
renames the directory out of the way first, so a half-deleted environment never shows up.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from flowdeck.engine.staging.base import (
    SOURCE_NAME,
    CloneRequest,
    EnvironmentExists,
    EnvironmentNotFound,
    ProviderError,
    StagingEnvironment,
    StagingError,
    StagingProvider,
    check_url_template,
    render_url,
    timestamp,
)

SETTINGS_FILE = "environment.json"
DATABASE_FILE = "database.sqlite3"
DEFAULT_URL_TEMPLATE = "http://{name}.staging.localhost"
DEFAULT_SOURCES: dict[str, dict[str, Any]] = {"production": {}}
#: How long the backup waits for a source database locked by a writer.
LOCK_TIMEOUT_S = 30.0
T = TypeVar("T")

SEED_SQL = """
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    plan TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    total_cents INTEGER NOT NULL,
    created_at TEXT NOT NULL
);
INSERT INTO customers (id, name, plan) VALUES
    (1, 'Acme Corp', 'enterprise'),
    (2, 'Globex', 'pro'),
    (3, 'Initech', 'free');
INSERT INTO orders (id, customer_id, total_cents, created_at) VALUES
    (1, 1, 129900, '2026-01-05T09:12:00Z'),
    (2, 1, 4900, '2026-01-19T16:40:00Z'),
    (3, 2, 24900, '2026-02-02T11:03:00Z');
"""


def _sources(raw: Any) -> dict[str, dict[str, Any]]:
    """`["production"]` or `{"production": {"database": "/path/to.db"}}` → name → options."""
    if raw is None:
        return dict(DEFAULT_SOURCES)
    if isinstance(raw, list | tuple):
        raw = {name: {} for name in raw}
    if not isinstance(raw, Mapping):
        raise StagingError("staging sources must be a list of names or a mapping")
    out: dict[str, dict[str, Any]] = {}
    for name, options in raw.items():
        if not isinstance(name, str) or SOURCE_NAME.fullmatch(name) is None:
            raise StagingError(f"staging source {name!r}: a name is lowercase letters, digits "
                               "and '-'")
        if options is None:
            options = {}
        if not isinstance(options, Mapping):
            raise StagingError(f"staging source '{name}': options must be a mapping")
        out[name] = dict(options)
    return out


def backup_database(source: Path, target: Path) -> None:
    """Copy the SQLite database `source` to `target` with the online backup API.

    One backup step copies every page under one read transaction, so the copy is a consistent
    snapshot of the source at one instant, whatever writers do meanwhile. The copy is written
    beside `target`, checked, synced and then moved into place.
    """
    partial = target.with_name(target.name + ".part")
    with contextlib.suppress(FileNotFoundError):
        partial.unlink()
    src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=rw", uri=True,
                          timeout=LOCK_TIMEOUT_S)
    try:
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst)  # pages=-1: the whole database in one step
            dst.execute("PRAGMA journal_mode=DELETE")
            row = dst.execute("PRAGMA quick_check").fetchone()
            if not row or row[0] != "ok":
                raise ProviderError(f"the copy of {source.name} failed its integrity check")
        finally:
            dst.close()
    finally:
        src.close()
    with open(partial, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(partial, target)


def seed_database(path: Path) -> None:
    """A small database with a couple of demo tables, for a source environment made here."""
    conn = sqlite3.connect(path)
    try:
        conn.executescript(SEED_SQL)
        conn.commit()
    finally:
        conn.close()


def _write_json(path: Path, data: dict[str, Any]) -> None:
    partial = path.with_name(path.name + ".part")
    with open(partial, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class _Abandoned(Exception):
    """The caller was cancelled while the work ran: undo it."""


class LocalProvider(StagingProvider):
    kind = "local"

    def __init__(self, root: Path, *, clock: Callable[[], datetime],
                 new_id: Callable[[], str], url_template: str = DEFAULT_URL_TEMPLATE,
                 sources: Any = None) -> None:
        super().__init__(clock=clock, new_id=new_id)
        self.root = Path(root).resolve()
        self.url_template = check_url_template(url_template)
        self.sources = _sources(sources)

    # -- plumbing -----------------------------------------------------------------------------

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking file and SQLite work off the event loop. A cancelled caller (a killed
        execution) waits for the work to notice and undo itself, so nothing is left half-made."""
        cancel = threading.Event()
        work = asyncio.ensure_future(asyncio.to_thread(fn, *args, cancel))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            cancel.set()
            await asyncio.wait({work})
            if not work.cancelled():
                work.exception()  # retrieved: the cancellation is what the caller reports
            raise

    def _record(self, name: str) -> StagingEnvironment | None:
        path = self.root / name / SETTINGS_FILE
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ProviderError(f"cannot read {path}: {exc}") from None
        if not isinstance(data, dict) or data.get("name") != name:
            raise ProviderError(f"{path} does not describe environment '{name}'")
        return StagingEnvironment.from_dict(data)

    def _url(self, name: str, env_id: str, client_name: str | None,
             source: str | None) -> str:
        return render_url(self.url_template, name=name, id=env_id,
                          client_name=client_name or "", source_environment=source or "")

    def _ensure_sources(self) -> None:
        """Create each configured source environment that does not exist yet (atomically:
        built aside, then renamed into place; a concurrent creator simply wins)."""
        self.root.mkdir(parents=True, exist_ok=True)
        for name, options in self.sources.items():
            final = self.root / name
            if (final / SETTINGS_FILE).exists():
                continue
            building = self.root / f".creating-{name}-{secrets.token_hex(4)}"
            building.mkdir()
            try:
                env_id = self.new_id()
                database = options.get("database")
                if not database:
                    seed_database(building / DATABASE_FILE)
                env = StagingEnvironment(
                    name=name, id=env_id, client_name=None, source_environment=None,
                    url=self._url(name, env_id, None, None), status="active",
                    created_at=timestamp(self.now()), provider=self.kind)
                _write_json(building / SETTINGS_FILE, env.to_dict())
                try:
                    os.rename(building, final)
                except OSError as exc:
                    if not (final / SETTINGS_FILE).exists():
                        raise ProviderError(f"cannot create source environment '{name}' in "
                                            f"{self.root}: {exc.strerror or exc}") from None
            finally:
                shutil.rmtree(building, ignore_errors=True)
        _fsync_dir(self.root)

    def _source_database(self, name: str) -> Path | None:
        """The database to copy for source `name`; None if it has none; NotFound if the
        source does not exist."""
        configured = self.sources.get(name, {}).get("database")
        if configured:
            path = Path(str(configured)).expanduser()
            if not path.is_file():
                raise EnvironmentNotFound(
                    f"the database of source environment '{name}' is not a file: {path}")
            return path
        if self._record(name) is None:
            known = ", ".join(sorted(self.sources)) or "none"
            raise EnvironmentNotFound(
                f"no source environment '{name}' (configured sources: {known}; an existing "
                "staging environment can be a source too)")
        path = self.root / name / DATABASE_FILE
        return path if path.is_file() else None

    # -- the hooks ------------------------------------------------------------------------------

    async def _clone(self, request: CloneRequest) -> StagingEnvironment:
        return await self._in_thread(self._clone_sync, request)

    def _clone_sync(self, request: CloneRequest, cancel: threading.Event) -> StagingEnvironment:
        self._ensure_sources()
        source_db = self._source_database(request.source_environment)
        if source_db is None and not request.skip_database:
            raise StagingError(
                f"source environment '{request.source_environment}' has no database to copy; "
                "clone it with skip_database")
        target = self.root / request.name
        try:
            target.mkdir()
        except FileExistsError:
            raise EnvironmentExists(
                f"environment '{request.name}' already exists; nothing was changed (choose "
                "another name, or delete it first)") from None
        try:
            env_id = self.new_id()
            env = StagingEnvironment(
                name=request.name, id=env_id, client_name=request.client_name,
                source_environment=request.source_environment,
                url=self._url(request.name, env_id, request.client_name,
                              request.source_environment),
                status="creating", created_at=timestamp(self.now()), provider=self.kind)
            _write_json(target / SETTINGS_FILE, env.to_dict())
            if not request.skip_database and source_db is not None:
                try:
                    backup_database(source_db, target / DATABASE_FILE)
                except (sqlite3.Error, OSError) as exc:
                    raise ProviderError(
                        f"cannot copy the database of '{request.source_environment}': "
                        f"{exc}") from None
            if cancel.is_set():
                raise _Abandoned
            env.status = "active"
            env.created_at = timestamp(self.now())
            _write_json(target / SETTINGS_FILE, env.to_dict())
            _fsync_dir(self.root)
            return env
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise

    async def _list(self) -> list[StagingEnvironment]:
        return await self._in_thread(self._list_sync)

    def _list_sync(self, cancel: threading.Event) -> list[StagingEnvironment]:
        self._ensure_sources()
        found = []
        for entry in sorted(self.root.iterdir()):
            if entry.name.startswith(".") or SOURCE_NAME.fullmatch(entry.name) is None:
                continue
            if not entry.is_dir() or entry.is_symlink():
                continue
            try:
                env = self._record(entry.name)
            except ProviderError:
                continue  # not ours, or damaged: never listed, never deleted from here
            if env is not None:
                found.append(env)
        return found

    async def _status(self, name: str) -> StagingEnvironment | None:
        return await self._in_thread(self._status_sync, name)

    def _status_sync(self, name: str, cancel: threading.Event) -> StagingEnvironment | None:
        self._ensure_sources()
        return self._record(name)

    async def _delete(self, name: str) -> StagingEnvironment:
        return await self._in_thread(self._delete_sync, name)

    def _delete_sync(self, name: str, cancel: threading.Event) -> StagingEnvironment:
        target = self.root / name
        if target.is_symlink():
            raise ProviderError(f"'{name}' is a symbolic link, not an environment; not deleted")
        env = self._record(name)
        if env is None:
            raise EnvironmentNotFound(f"no staging environment '{name}'")
        doomed = self.root / f".deleting-{name}-{secrets.token_hex(4)}"
        os.rename(target, doomed)
        _fsync_dir(self.root)
        shutil.rmtree(doomed, ignore_errors=True)
        return env
