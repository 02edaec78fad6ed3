"""Namespace files: a directory per namespace under the data dir, never escaped by a path.

Paths are checked lexically (no `..` or `.` segment, no NUL) and then on disk: no component of
a path, the namespace directory included, may be a symbolic link (a shell task can plant one;
following it would read, list, write or delete outside the namespace). Files are opened with
`O_NOFOLLOW`, listings and searches skip links, a delete removes a link itself and never what
it points to.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flowdeck.core.errors import NotFoundError, ValidationError

#: Files being written are first put under this prefix; they never show in listings.
TMP_PREFIX = ".flowdeck-tmp-"


@dataclass(slots=True)
class FileAttributes:
    file_name: str
    is_dir: bool
    size: int
    modified_ms: int
    created_ms: int

    def to_dict(self) -> dict[str, Any]:
        return {"fileName": self.file_name, "lastModifiedTime": self.modified_ms,
                "creationTime": self.created_ms, "type": "Directory" if self.is_dir else "File",
                "size": self.size, "metadata": {}}


def _link_refused(path: str | None, where: Path) -> ValidationError:
    return ValidationError([("path", f"'{path or '/'}' goes through '{where.name}', a symbolic "
                                     "link: namespace files never follow links")])


class NamespaceFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, namespace: str, path: str | None, *,
                final_link: bool = False) -> Path:
        """The file or directory `path` names in the namespace, checked lexically and on disk:
        no component that exists may be a symbolic link (with `final_link`, the last one may
        be: a delete removes the link itself)."""
        if (not isinstance(namespace, str) or namespace in ("", ".", "..")
                or any(c in namespace for c in "/\\\x00")):
            raise ValidationError([("namespace", f"invalid namespace {namespace!r}")])
        if "\x00" in (path or ""):
            raise ValidationError([("path", f"{path!r} must not contain a NUL byte")])
        parts = PurePosixPath("/" + (path or "").lstrip("/")).parts[1:]
        if any(p in ("..", ".") for p in parts):
            raise ValidationError([("path", f"'{path}' must not contain '..' or '.' segments")])
        base = self.root.resolve() / namespace
        current = base
        for index, part in enumerate((None, *parts)):
            if part is not None:
                current = current / part
            try:
                mode = os.lstat(current).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break  # the rest does not exist yet
            if stat.S_ISLNK(mode) and not (final_link and index == len(parts) and parts):
                raise _link_refused(path, current)
        return base.joinpath(*parts) if parts else base

    @staticmethod
    def _check_writable(path: str) -> None:
        parts = PurePosixPath("/" + path.lstrip("/")).parts[1:]
        if parts[:1] == ("_flows",):
            raise ValidationError([("path", "'/_flows' is reserved")])
        if parts and parts[-1].startswith(TMP_PREFIX):
            raise ValidationError([("path", f"names starting with '{TMP_PREFIX}' are reserved")])

    def _make_parents(self, namespace: str, target: Path, path: str) -> None:
        base = self.resolve(namespace, None)
        for parent in reversed(target.parents):
            if parent.is_relative_to(base) and parent.exists() and not parent.is_dir():
                raise ValidationError([("path", f"'{path}': '/{parent.relative_to(base)}' "
                                                "is a file, not a directory")])
        target.parent.mkdir(parents=True, exist_ok=True)

    def put(self, namespace: str, path: str, content: bytes) -> None:
        target = self.resolve(namespace, path)
        if target == self.resolve(namespace, None):
            raise ValidationError([("path", "is required")])
        self._check_writable(path)
        if target.is_dir():
            raise ValidationError([("path", f"'{path}' is a directory")])
        self._make_parents(namespace, target, path)
        tmp = target.with_name(f"{TMP_PREFIX}{target.name}")
        if os.path.lexists(tmp) and not tmp.is_dir():  # a crash's leftover, or a planted link
            tmp.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                     0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
        tmp.replace(target)

    def get(self, namespace: str, path: str) -> bytes:
        target = self.resolve(namespace, path)
        if not target.is_file():
            raise NotFoundError(f"no file '{path}' in namespace '{namespace}'")
        try:
            fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:  # swapped for a link since the check: ELOOP
            raise _link_refused(path, target) if exc.errno == errno.ELOOP else exc from None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    def _attrs(self, target: Path) -> FileAttributes:
        st = target.lstat()
        is_dir = stat.S_ISDIR(st.st_mode)
        return FileAttributes(target.name, is_dir, 0 if is_dir else st.st_size,
                              int(st.st_mtime * 1000), int(st.st_ctime * 1000))

    def stats(self, namespace: str, path: str | None) -> FileAttributes:
        target = self.resolve(namespace, path)
        if not target.exists():
            raise NotFoundError(f"no file or directory '{path}' in namespace '{namespace}'")
        return self._attrs(target)

    def list_dir(self, namespace: str, path: str | None = None) -> list[FileAttributes]:
        target = self.resolve(namespace, path)
        if not target.exists():
            if path and path.strip("/"):
                raise NotFoundError(f"no directory '{path}' in namespace '{namespace}'")
            return []
        if not target.is_dir():
            raise ValidationError([("path", f"'{path}' is a file, not a directory")])
        return [self._attrs(p) for p in sorted(target.iterdir())
                if not p.name.startswith(TMP_PREFIX) and not p.is_symlink()]

    def mkdir(self, namespace: str, path: str) -> None:
        target = self.resolve(namespace, path)
        self._check_writable(path)
        if target.exists() and not target.is_dir():
            raise ValidationError([("path", f"'{path}' is a file")])
        self._make_parents(namespace, target, path)
        target.mkdir(exist_ok=True)

    def move(self, namespace: str, source: str, dest: str) -> None:
        src = self.resolve(namespace, source)
        target = self.resolve(namespace, dest)
        base = self.resolve(namespace, None)
        if src == base or target == base:
            raise ValidationError([("path", "the namespace root cannot be moved or replaced")])
        if not src.exists():
            raise NotFoundError(f"no file or directory '{source}' in namespace '{namespace}'")
        self._check_writable(dest)
        if target.exists():
            raise ValidationError([("to", f"'{dest}' already exists")])
        if target.is_relative_to(src):
            raise ValidationError([("to", f"cannot move '{source}' into itself")])
        self._make_parents(namespace, target, dest)
        src.rename(target)

    def delete(self, namespace: str, path: str) -> None:
        target = self.resolve(namespace, path, final_link=True)
        base = self.resolve(namespace, None)
        if target == base:
            raise ValidationError([("path", "refusing to delete the namespace root")])
        if not os.path.lexists(target):
            raise NotFoundError(f"no file or directory '{path}' in namespace '{namespace}'")
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)  # never follows the links inside (it works on descriptors)
        else:
            target.unlink()  # a file, or a link itself
        parent = target.parent
        while parent != base and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def search(self, namespace: str, query: str) -> list[str]:
        base = self.resolve(namespace, None)
        if not base.exists():
            return []
        found = []
        for folder, _, names in os.walk(base):  # never descends into linked directories
            for name in names:
                path = Path(folder) / name
                if (name.startswith(TMP_PREFIX) or query.lower() not in name.lower()
                        or not stat.S_ISREG(path.lstat().st_mode)):
                    continue
                found.append("/" + str(path.relative_to(base)))
        return sorted(found)
