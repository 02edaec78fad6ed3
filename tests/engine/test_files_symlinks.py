"""Namespace files never follow a symbolic link out of (or within) the namespace directory."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from flowdeck.core.errors import NotFoundError, ValidationError
from flowdeck.engine.engine import Engine
from flowdeck.engine.files import TMP_PREFIX

NS = "t.links"


@pytest.fixture
def planted(engine: Engine, tmp_path: Path) -> Path:
    """A namespace directory with links planted in it (by a task, say), and their targets."""
    outside = tmp_path / "outside"
    (outside / "dir").mkdir(parents=True)
    (outside / "secret.txt").write_text("outside secret")
    (outside / "dir" / "inner.txt").write_text("inner secret")
    engine.files.put(NS, "/real/ok.txt", b"fine")
    base = engine.data_dir / "files" / NS
    (base / "to-file").symlink_to(outside / "secret.txt")
    (base / "to-dir").symlink_to(outside / "dir")
    (base / "real" / "up").symlink_to(outside)
    (base / f"{TMP_PREFIX}new.txt").symlink_to(outside / "planted-target")
    (engine.data_dir / "files" / "t.elsewhere").symlink_to(outside)  # a namespace that is a link
    return outside


def refuses(call: object, *args: object) -> None:
    assert callable(call)
    with pytest.raises((ValidationError, NotFoundError)) as info:
        call(*args)
    if isinstance(info.value, ValidationError):
        assert "symbolic link" in str(info.value)


def test_reads_never_follow_links(engine: Engine, planted: Path) -> None:
    files = engine.files
    for path in ("/to-file", "/to-dir/inner.txt", "/real/up/secret.txt"):
        refuses(files.get, NS, path)
        refuses(files.stats, NS, path)
    refuses(files.list_dir, NS, "/to-dir")
    refuses(files.list_dir, NS, "/real/up")
    refuses(files.get, "t.elsewhere", "/secret.txt")
    refuses(files.list_dir, "t.elsewhere", None)
    # Listings and searches show real files only; the links' targets are never looked at.
    assert [a.file_name for a in files.list_dir(NS)] == ["real"]
    assert [a.file_name for a in files.list_dir(NS, "/real")] == ["ok.txt"]
    assert files.search(NS, "") == ["/real/ok.txt"]
    assert files.get(NS, "/real/ok.txt") == b"fine"


def test_writes_moves_and_deletes_never_follow_links(engine: Engine, planted: Path) -> None:
    files = engine.files
    refuses(files.put, NS, "/to-dir/new.txt", b"x")
    refuses(files.put, NS, "/to-file", b"x")
    refuses(files.mkdir, NS, "/real/up/made")
    refuses(files.move, NS, "/to-dir/inner.txt", "/stolen.txt")
    refuses(files.move, NS, "/real/ok.txt", "/to-dir/ok.txt")
    refuses(files.delete, NS, "/to-dir/inner.txt")
    refuses(files.delete, NS, "/real/up/secret.txt")
    # A planted temporary name is not written through either.
    files.put(NS, "/new.txt", b"written safely")
    assert files.get(NS, "/new.txt") == b"written safely"
    assert not (planted / "planted-target").exists()
    # Deleting a link removes the link itself, never what it points to.
    files.delete(NS, "/to-dir")
    files.delete(NS, "/real")
    assert not os.path.lexists(engine.data_dir / "files" / NS / "to-dir")
    assert (planted / "dir" / "inner.txt").read_text() == "inner secret"
    assert (planted / "secret.txt").read_text() == "outside secret"
    assert sorted(p.name for p in planted.iterdir()) == ["dir", "secret.txt"]
