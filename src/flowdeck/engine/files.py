"""Namespace files: a directory per namespace under the data dir, never escaped by a path."""

from __future__ import annotations

import shutil
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


class NamespaceFiles:
    def __init__(self, root: Path) -> None:
        self.root = root

    def resolve(self, namespace: str, path: str | None) -> Path:
        if (not isinstance(namespace, str) or namespace in ("", ".", "..")
                or any(c in namespace for c in "/\\\x00")):
            raise ValidationError([("namespace", f"invalid namespace {namespace!r}")])
        if "\x00" in (path or ""):
            raise ValidationError([("path", f"{path!r} must not contain a NUL byte")])
        parts = PurePosixPath("/" + (path or "").lstrip("/")).parts[1:]
        if any(p in ("..", ".") for p in parts):
            raise ValidationError([("path", f"'{path}' must not contain '..' or '.' segments")])
        base = (self.root / namespace).resolve()
        target = base.joinpath(*parts) if parts else base
        return target

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
        tmp.write_bytes(content)
        tmp.replace(target)

    def get(self, namespace: str, path: str) -> bytes:
        target = self.resolve(namespace, path)
        if not target.is_file():
            raise NotFoundError(f"no file '{path}' in namespace '{namespace}'")
        return target.read_bytes()

    def _attrs(self, target: Path) -> FileAttributes:
        st = target.stat()
        return FileAttributes(target.name, target.is_dir(), 0 if target.is_dir() else st.st_size,
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
                if not p.name.startswith(TMP_PREFIX)]

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
        target = self.resolve(namespace, path)
        base = self.resolve(namespace, None)
        if target == base:
            raise ValidationError([("path", "refusing to delete the namespace root")])
        if not target.exists():
            raise NotFoundError(f"no file or directory '{path}' in namespace '{namespace}'")
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink()
        parent = target.parent
        while parent != base and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def search(self, namespace: str, query: str) -> list[str]:
        base = self.resolve(namespace, None)
        if not base.exists():
            return []
        return sorted("/" + str(p.relative_to(base)) for p in base.rglob("*")
                      if p.is_file() and not p.name.startswith(TMP_PREFIX)
                      and query.lower() in p.name.lower())
