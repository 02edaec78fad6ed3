"""Working directories of task runs, `work/<execution id>/<task run id>`, made ahead of need.

Making a directory allocates an inode and a data block. On a busy ext4 volume (other writers,
our own fsyncs, discards) that can take several hundred microseconds, and it sits on the path
between two shell tasks. So once a shell task's process is running (the event loop only waits
for it then), the engine makes one spare empty directory, `work/.next`; the next task run that
needs a directory renames it into place, which only changes directory entries and is much
cheaper. The spare is removed when the engine closes; one left by a crash is adopted if empty.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

SPARE_NAME = ".next"


class WorkDirs:
    """Task working directories under `root` (the engine's `work` directory)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._spare: Path | None = None

    def create(self, path: Path) -> Path:
        """Make `path` (a directory below `root`) exist, fresh and empty if it is new."""
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                return self._rename(spare, path)
            except OSError:  # in use already (a retry: ENOTEMPTY), or the spare is gone
                if spare.is_dir():
                    self._spare = spare
        try:
            os.mkdir(path)
        except FileNotFoundError:
            path.mkdir(parents=True, exist_ok=True)
        except FileExistsError:
            pass
        return path

    @staticmethod
    def _rename(spare: Path, path: Path) -> Path:
        try:
            os.rename(spare, path)  # atomic; replaces `path` only if it is an empty directory
        except FileNotFoundError:
            if path.parent.is_dir():
                raise
            path.parent.mkdir(parents=True, exist_ok=True)  # an execution's first directory
            os.rename(spare, path)
        return path

    def prepare_spare(self) -> None:
        """Make the spare directory now, if there is none (best effort: errors are ignored)."""
        if self._spare is not None:
            return
        spare = self.root / SPARE_NAME
        try:
            os.mkdir(spare)
        except FileExistsError:
            try:
                if not spare.is_dir() or any(spare.iterdir()):
                    return  # not an empty directory: leave it alone
            except OSError:
                return
        except FileNotFoundError:
            try:
                spare.mkdir(parents=True, exist_ok=True)
            except OSError:
                return
        except OSError:
            return
        self._spare = spare

    def drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is not None:
            with contextlib.suppress(OSError):
                os.rmdir(spare)
