"""Namespace files: a directory per namespace under the data dir, never escaped by a path."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from flowdeck.core.errors import NotFoundError, ValidationError


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
        base = (self.root / namespace).resolve()
        parts = PurePosixPath("/" + (path or "").lstrip("/")).parts[1:]
        if any(p in ("..", ".") for p in parts) or "\x00" in (path or ""):
            raise ValidationError([("path", f"'{path}' must not contain '..' or '.' segments")])
        if namespace in ("", ".", "..") or "/" in namespace:
            raise ValidationError([("namespace", f"invalid namespace '{namespace}'")])
        target = base.joinpath(*parts) if parts else base
        return target

    def put(self, namespace: str, path: str, content: bytes) -> None:
        if not path.strip("/"):
            raise ValidationError([("path", "is required")])
        if PurePosixPath("/" + path.lstrip("/")).parts[1:2] == ("_flows",):
            raise ValidationError([("path", "'/_flows' is reserved")])
        target = self.resolve(namespace, path)
        if target.is_dir():
            raise ValidationError([("path", f"'{path}' is a directory")])
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
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
        return [self._attrs(p) for p in sorted(target.iterdir()) if not p.name.startswith(".")]

    def mkdir(self, namespace: str, path: str) -> None:
        self.resolve(namespace, path).mkdir(parents=True, exist_ok=True)

    def move(self, namespace: str, source: str, dest: str) -> None:
        src = self.resolve(namespace, source)
        if not src.exists():
            raise NotFoundError(f"no file or directory '{source}' in namespace '{namespace}'")
        target = self.resolve(namespace, dest)
        target.parent.mkdir(parents=True, exist_ok=True)
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
                      if p.is_file() and query.lower() in p.name.lower())
