"""What only an engine running in this process offers, beyond the `Backend` protocol.

A command line on the embedded engine is the engine's whole life: it opens it without starting
it (or read-only, beside another process's engine) so that reading changes nothing, starts it
just before a change, and waits for an ended run's last log lines before it exits. A remote
server needs none of this, so it is a capability the caller holds next to its `Backend`
(`EmbeddedBackend` provides it), not part of the protocol every backend implements.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class LocalEngine(Protocol):
    """The engine in this process: its data dir, whether it runs, and starting it."""

    @property
    def data_dir(self) -> Path: ...

    @property
    def started(self) -> bool:
        """Whether it runs (recovery done): runs it starts or resumes live in this process."""
        ...

    @property
    def read_only(self) -> bool:
        """Opened beside another process's engine: it reads, and refuses every change."""
        ...

    async def start(self) -> None:
        """Recover what an earlier process left unfinished; a no-op once it runs."""
        ...

    async def wait_released(self, execution_id: str, timeout: float) -> None:
        """Wait until an ended execution's runner has let go (its last lines committed)."""
        ...
