"""Where the engine that holds a data dir serves its HTTP API, so a command refused there can
name the URL to use instead.

`flowdeck serve` and a deck opened with `--serve` write `serving.url` in the data dir (their pid
and URL) once they listen, and remove it when they stop. It is trusted only while the same
process holds the engine lock, so a file a crash left behind is never believed.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE = "serving.url"


def record(data_dir: Path, url: str) -> None:
    path = data_dir / FILE
    temporary = path.with_suffix(".tmp")
    with contextlib.suppress(OSError):  # a convenience: never a reason to fail
        temporary.write_text(f"{os.getpid()} {url}\n", encoding="utf-8")
        temporary.replace(path)


def clear(data_dir: Path) -> None:
    if _read(data_dir / FILE)[0] == str(os.getpid()):
        with contextlib.suppress(OSError):
            (data_dir / FILE).unlink()


def served_at(data_dir: Path) -> str | None:
    """The URL the engine holding `data_dir` serves its API at, if it says so."""
    pid, url = _read(data_dir / FILE)
    holder = _read(data_dir / "engine.lock")[0]
    return url if pid is not None and pid == holder and url else None


def _read(path: Path) -> tuple[str | None, str | None]:
    try:
        words = path.read_text(encoding="utf-8").split()
    except (OSError, UnicodeDecodeError):
        return None, None
    return (words[0] if words else None), (words[1] if len(words) > 1 else None)
