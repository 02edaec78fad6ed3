"""The GitOps repository: one manifest file per environment and project, one commit per
deployment, written with dulwich (no git binary needed).

The repository is bare unless an existing one is given (`[forge] gitops_path`): only the
branch's ref moves, by compare-and-swap, so anything else in it is left alone (a checked-out
work tree of a non-bare repository is not updated: point the setting at a dedicated or bare
repository). Writes block, so callers run them in a thread, one at a time.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import yaml
from dulwich.object_store import commit_tree_changes, tree_lookup_path
from dulwich.objects import Blob, Commit, ObjectID, Tree
from dulwich.refs import Ref
from dulwich.repo import Repo

from flowdeck.core.errors import FlowdeckError

AUTHOR = b"flowdeck <flowdeck@localhost>"
MODE_FILE = 0o100644


class GitOpsError(FlowdeckError):
    """The GitOps repository could not be written or read."""


def manifest_path(environment: str, repository: str, project: str) -> str:
    return f"environments/{environment}/{repository}/{project}.yaml"


def manifest_text(manifest: dict[str, object]) -> str:
    return yaml.safe_dump(manifest, sort_keys=False, allow_unicode=True)


class GitOpsRepository:
    def __init__(self, path: Path, branch: str = "main") -> None:
        self.path = path
        self.branch = branch
        self.ref = Ref(b"refs/heads/" + branch.encode())

    @contextlib.contextmanager
    def _repo(self) -> Iterator[Repo]:
        try:
            if not self.path.exists() or not any(self.path.iterdir()):
                repo = Repo.init_bare(self.path, mkdir=not self.path.exists(),
                                      default_branch=self.branch.encode())
            else:
                repo = Repo(str(self.path))
        except Exception as exc:  # NotGitRepository, permissions, a file in the way ...
            raise GitOpsError(f"GitOps repository {self.path}: {type(exc).__name__}: "
                              f"{exc}") from None
        try:
            yield repo
        finally:
            repo.close()

    def _head(self, repo: Repo) -> ObjectID | None:
        try:
            return repo.refs[self.ref]
        except KeyError:
            return None

    def commit(self, files: dict[str, str], message: str, when: datetime) -> str:
        """Write `files` (path → text) on top of the branch in one commit; its SHA."""
        with self._repo() as repo:
            store = repo.object_store
            old = self._head(repo)
            if old is not None:
                base = repo[old].tree  # type: ignore[attr-defined]
            else:
                empty = Tree()
                store.add_object(empty)
                base = empty.id
            changes = []
            for path, text in files.items():
                blob = Blob.from_string(text.encode("utf-8"))
                store.add_object(blob)
                changes.append((path.encode("utf-8"), MODE_FILE, blob.id))
            commit = Commit()
            commit.tree = commit_tree_changes(store, base, changes)
            commit.parents = [old] if old is not None else []
            commit.author = commit.committer = AUTHOR
            commit.author_time = commit.commit_time = int(when.timestamp())
            commit.author_timezone = commit.commit_timezone = 0
            commit.encoding = b"UTF-8"
            commit.message = message.encode("utf-8")
            store.add_object(commit)
            if old is None:
                moved = repo.refs.add_if_new(self.ref, commit.id)
            else:
                moved = repo.refs.set_if_equals(self.ref, old, commit.id)
            if not moved:
                raise GitOpsError(f"branch {self.branch} of {self.path} moved during the commit")
            return commit.id.decode("ascii")

    def read(self, path: str, commit_sha: str | None = None) -> str | None:
        """A file's text at a commit (default: the branch's head), None if absent."""
        with self._repo() as repo:
            if commit_sha is None:
                head = self._head(repo)
                if head is None:
                    return None
                sha = head
            else:
                sha = ObjectID(commit_sha.encode("ascii"))
            try:
                tree = repo[sha].tree  # type: ignore[attr-defined]
                _, blob_id = tree_lookup_path(repo.__getitem__, tree, path.encode("utf-8"))
            except KeyError:
                return None
            data: bytes = repo[blob_id].as_raw_string()
            return data.decode("utf-8")

    def history(self, limit: int = 100) -> list[tuple[str, str, list[str]]]:
        """(sha, message, parent SHAs) of the branch's newest commits, newest first."""
        with self._repo() as repo:
            head = self._head(repo)
            if head is None:
                return []
            out = []
            for entry in repo.get_walker(include=[head], max_entries=limit):
                c = entry.commit
                out.append((c.id.decode("ascii"), c.message.decode("utf-8", "replace"),
                            [p.decode("ascii") for p in c.parents]))
            return out
