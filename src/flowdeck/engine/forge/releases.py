"""Releases: numbered 1, 2, 3 ... per repository and project, without gaps or duplicates.

The number is allocated inside the write transaction that inserts the release (the store has
one writer, and each operation runs in its own savepoint), so concurrent creates never share a
number and a refused create (same commit twice, a tag already used) never consumes one. The
`release.created` event is written in that same transaction.
"""

from __future__ import annotations

import builtins
import json
import sqlite3
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import aiosqlite

from flowdeck.core.errors import ConflictError, NotFoundError, ValidationError
from flowdeck.core.forge import Artifact, Page, Release, ReleaseTrigger
from flowdeck.core.ids import is_uuid
from flowdeck.core.timefmt import format_instant
from flowdeck.engine.forge import validate
from flowdeck.engine.forge.events import release_created
from flowdeck.engine.forge.settings import ForgeSettings
from flowdeck.engine.store import dumps

if TYPE_CHECKING:
    from flowdeck.engine.engine import Engine
    from flowdeck.engine.forge.runs import RunService

COLUMNS = ("id, repository, project, commit_sha, release_number, tag, oci_uri, oci_digest, "
           "artifacts, created_at, created_by, pipeline_run_id, trigger")
SELECT = f"SELECT {COLUMNS} FROM forge_releases"


def release_of(row: Sequence[Any]) -> Release:
    return Release(
        id=row[0], repository=row[1], project=row[2], commit_sha=row[3],
        release_number=int(row[4]), tag=row[5], oci_uri=row[6], oci_digest=row[7],
        artifacts=tuple(Artifact.from_dict(a) for a in json.loads(row[8])), created_at=row[9],
        created_by=row[10], pipeline_run_id=row[11],
        trigger=ReleaseTrigger.from_dict(json.loads(row[12])))


def oci_uri_of(template: str | None, fields: dict[str, Any],
               artifacts: tuple[Artifact, ...]) -> str | None:
    """From the configured template, else the first container artifact's URI."""
    if template:
        return template.format_map(fields)
    for artifact in artifacts:
        if artifact.type == "container":
            return artifact.tracking_oci_uri or artifact.primary_published_uri
    return None


def oci_digest_of(given: str | None, artifacts: tuple[Artifact, ...]) -> str | None:
    """As given, else the first container artifact's digest (given, or pinned in its URI)."""
    if given:
        return given
    for artifact in artifacts:
        if artifact.type != "container":
            continue
        if artifact.digest:
            return artifact.digest
        for uri in (artifact.tracking_oci_uri, artifact.primary_published_uri):
            _, at, pinned = (uri or "").rpartition("@")
            if at and validate.DIGEST.fullmatch(pinned):
                return pinned
    return None


class ReleaseService:
    def __init__(self, engine: Engine, settings: ForgeSettings, runs: RunService) -> None:
        self.engine = engine
        self.settings = settings
        self.runs = runs

    async def create(self, repository: str, project: str, commit_sha: str,
                     artifacts: Any = None, *, by: str, pipeline_run_id: str | None = None,
                     tag: str | None = None, oci_digest: str | None = None) -> Release:
        repository = validate.repository(repository)
        project = validate.project(project)
        commit_sha = validate.commit_sha(commit_sha)
        checked = validate.artifacts(artifacts)
        by = validate.person(by, "by")
        tag = validate.tag(tag)
        digest = oci_digest_of(validate.digest(oci_digest), checked)
        run_id = validate.uuid_field(pipeline_run_id, "pipeline_run_id", required=False)
        trigger = await self._trigger(run_id, repository, commit_sha, tag, by)
        release_id = self.engine.new_id()
        created_at = format_instant(self.engine.clock.now())
        owner, _, name = repository.partition("/")
        fields: dict[str, Any] = {"repository": repository, "owner": owner, "name": name,
                                  "project": project, "commit_sha": commit_sha,
                                  "tag": tag or ""}

        async def op(conn: aiosqlite.Connection) -> Release:
            cursor = await conn.execute(
                "SELECT COALESCE(MAX(release_number), 0) + 1 FROM forge_releases "
                "WHERE repository = ? AND project = ?", (repository, project))
            row = await cursor.fetchone()
            number = int(row[0]) if row else 1
            uri = oci_uri_of(self.settings.oci_uri_template,
                             {**fields, "release_number": number}, checked)
            release = Release(id=release_id, repository=repository, project=project,
                              commit_sha=commit_sha, release_number=number, oci_uri=uri,
                              oci_digest=digest, created_at=created_at, created_by=by,
                              artifacts=checked, trigger=trigger, tag=tag,
                              pipeline_run_id=run_id)
            try:
                await conn.execute(
                    f"INSERT INTO forge_releases({COLUMNS}) VALUES ({','.join('?' * 13)})",
                    (release.id, repository, project, commit_sha, number, tag, uri, digest,
                     dumps([a.to_dict() for a in checked]), created_at, by, run_id,
                     dumps(trigger.to_dict())))
            except sqlite3.IntegrityError:
                raise await self._conflict(conn, repository, project, commit_sha, tag) from None
            await self.engine.events.append(conn, [release_created(release)])
            return release

        result: Release = await self.engine.store.run(op)
        return result

    async def _conflict(self, conn: aiosqlite.Connection, repository: str, project: str,
                        commit_sha: str, tag: str | None) -> ConflictError:
        cursor = await conn.execute(
            "SELECT id, release_number, commit_sha, tag FROM forge_releases WHERE repository = ? "
            "AND project = ? AND (commit_sha = ? OR tag = ?)",
            (repository, project, commit_sha, tag))
        row = await cursor.fetchone()
        if row is not None and row[2] == commit_sha:
            return ConflictError(
                f"release {row[1]} of {repository}/{project} already exists for commit "
                f"{commit_sha}", {"release_id": row[0], "release_number": row[1]})
        number = row[1] if row else "?"
        return ConflictError(f"tag '{tag}' is already release {number} of "
                             f"{repository}/{project}", {"release_number": number})

    async def _trigger(self, run_id: str | None, repository: str, commit_sha: str,
                       tag: str | None, by: str) -> ReleaseTrigger:
        if run_id is None:
            return ReleaseTrigger("tag" if tag else "manual", None, by)
        try:
            run = await self.runs.get(run_id)
        except NotFoundError:
            raise ValidationError([("pipeline_run_id", f"no pipeline run '{run_id}'")]) from None
        if run.repository != repository:
            raise ValidationError([("pipeline_run_id", f"run {run_id} is a run of "
                                    f"{run.repository}, not of {repository}")])
        if run.commit_sha and run.commit_sha != commit_sha:
            raise ValidationError([("pipeline_run_id", f"run {run_id} built commit "
                                    f"{run.commit_sha}, not {commit_sha}")])
        if tag:
            kind = "tag"
        elif run.trigger_type in ("push", "pull_request"):
            kind = "branch_push"
        else:
            kind = "manual"
        return ReleaseTrigger(kind, run.branch or None, run.triggered_by or by)

    async def by_id(self, release_id: str) -> Release:
        row = None
        if isinstance(release_id, str) and is_uuid(release_id):
            row = await self.engine.store.fetchone(f"{SELECT} WHERE id = ?",
                                                   (release_id.lower(),))
        if row is None:
            raise NotFoundError(f"no release '{release_id}'")
        return release_of(row)

    async def get(self, repository: str, project: str, ref: str) -> Release:
        """A release by id, number, tag or commit SHA (a unique prefix of 7+ digits too)."""
        repository = validate.repository(repository)
        project = validate.project(project)
        ref = validate.required_text("release_id", ref, max_len=128)
        where, key = "repository = ? AND project = ?", (repository, project)
        fetch = self.engine.store.fetchall
        candidates: list[tuple[str, tuple[Any, ...]]] = []
        if is_uuid(ref):
            candidates.append(("id = ?", (ref.lower(),)))
        if ref.isdigit() and len(ref) <= 18:
            candidates.append(("release_number = ?", (int(ref),)))
        candidates.append(("tag = ?", (ref,)))
        if validate.SHA.fullmatch(ref.lower()):
            candidates.append(("commit_sha = ?", (ref.lower(),)))
            candidates.append(("substr(commit_sha, 1, ?) = ?", (len(ref), ref.lower())))
        for clause, params in candidates:
            rows = await fetch(f"{SELECT} WHERE {where} AND {clause} LIMIT 2", (*key, *params))
            if len(rows) == 1:
                return release_of(rows[0])
            if len(rows) > 1:
                raise NotFoundError(f"'{ref}' matches more than one release of "
                                    f"{repository}/{project}: give more of the commit SHA")
        raise NotFoundError(f"no release '{ref}' of {repository}/{project}")

    async def list(self, repository: str, project: str, limit: int = 20,
                   offset: int = 0) -> Page[Release]:
        repository = validate.repository(repository)
        project = validate.project(project)
        limit, offset = validate.page(limit, offset)
        rows = await self.engine.store.fetchall(
            f"{SELECT} WHERE repository = ? AND project = ? ORDER BY release_number DESC "
            "LIMIT ? OFFSET ?", (repository, project, limit, offset))
        total = await self.engine.store.fetchone(
            "SELECT COUNT(*) FROM forge_releases WHERE repository = ? AND project = ?",
            (repository, project))
        return Page(tuple(release_of(r) for r in rows), int(total[0]) if total else 0, limit,
                    offset)

    async def projects(self) -> builtins.list[tuple[str, str, int, Release]]:
        """(repository, project, release count, newest release) of every project."""
        rows = await self.engine.store.fetchall(
            f"SELECT {', '.join('r.' + c.strip() for c in COLUMNS.split(','))}, n.total "
            "FROM forge_releases r JOIN (SELECT repository, project, MAX(release_number) AS "
            "latest, COUNT(*) AS total FROM forge_releases GROUP BY repository, project) n "
            "ON n.repository = r.repository AND n.project = r.project AND "
            "n.latest = r.release_number ORDER BY r.repository, r.project")
        return [(r[1], r[2], int(r[13]), release_of(r)) for r in rows]
