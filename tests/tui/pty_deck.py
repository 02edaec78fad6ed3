"""The deck in a real pseudo-terminal: `python -m flowdeck.cli --data-dir D` (embedded), its
output captured byte for byte, keys written as a terminal would write them."""

from __future__ import annotations

import errno
import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

#: CSI and OSC sequences and the other escapes a terminal interprets (to read the text).
_ESCAPES = re.compile(rb"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
                      rb"|\x1b[()][0-9A-Za-z]|\x1b[=>78cDEHM]")


class Deck:
    """The deck in a pty; `out` is every byte it has written."""

    def __init__(self, data_dir: Path, home: Path, *, size: tuple[int, int] = (100, 30),
                 term: str = "xterm-256color", args: tuple[str, ...] = ()) -> None:
        columns, lines = size
        self.master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", lines, columns, 0, 0))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWDECK_")}
        env.update(TERM=term, COLUMNS=str(columns), LINES=str(lines), HOME=str(home),
                   XDG_CONFIG_HOME=str(home / "config"), XDG_DATA_HOME=str(home / "data"),
                   TZ="UTC", TEXTUAL_ANIMATIONS="none")
        env.pop("NO_COLOR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.cli", "--data-dir", str(data_dir), *args],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
            close_fds=True)
        os.close(slave)
        self.out = bytearray()

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            ready, _, _ = select.select([self.master], [], [], min(left, 0.05))
            if ready:
                try:
                    chunk = os.read(self.master, 65536)
                except OSError as exc:  # EIO: the child closed the terminal
                    if exc.errno == errno.EIO:
                        return
                    raise
                if not chunk:
                    return
                self.out += chunk

    def wait_for(self, marker: bytes, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.out:
                return True
            self.pump(0.1)
        return False

    def write(self, data: str) -> None:
        """Every byte in one write, as a paste or a laggy link delivers keys."""
        os.write(self.master, data.encode())

    def text(self, since: int = 0) -> str:
        """What was written from byte `since` on, with the escape sequences taken out."""
        return _ESCAPES.sub(b"", bytes(self.out[since:])).decode("utf-8", errors="replace")

    def wait_for_text(self, text: str, timeout: float, since: int = 0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.text(since):
                return True
            self.pump(0.1)
        return False

    def send(self, keys: str, settle: float = 0.15) -> None:
        for key in keys:
            os.write(self.master, key.encode())
            self.pump(0.03)
        self.pump(settle)

    def wait_exit(self, timeout: float) -> bool:
        """Read what the deck writes until it has exited (it closes its engine after leaving
        the screen, which takes a while on a loaded machine); False if it is still running."""
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.pump(0.05)
        return self.proc.poll() is not None

    def close(self) -> int | None:
        """Stop the deck if it still runs (a test that failed half-way) and its exit code."""
        try:
            self.proc.wait(timeout=0.1)
        except subprocess.TimeoutExpired:
            self.pump(0)
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        os.close(self.master)
        return self.proc.returncode


