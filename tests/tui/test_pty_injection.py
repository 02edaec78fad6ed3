"""Reliability T1: escape-sequence injection through engine data, captured from a real pty.

The deck (`python -m flowdeck.cli --data-dir D`, embedded) runs in a pseudo-terminal at 100x30
with TERM=xterm-256color over a data dir whose log lines, flow description, labels, approval
title/rows and an approval comment carry a corpus of terminal escape payloads. Keys walk it
through every screen that shows them; the raw bytes it writes are captured and searched.

Every payload carries marker text: `PWNED-<name>` sits *inside* the sequence (an OSC title, a
DCS body...), so `ESC ] 0 ; PWNED` in the stream means a payload reached the terminal;
`V-<name>` sits before it as plain text, so seeing it proves the payload's line was painted.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import signal
from pathlib import Path

import pytest

from flowdeck.engine.engine import Engine, EngineSettings
from tui.pty_deck import Deck

CLIP = base64.b64encode(b"PWNED-CLIP").decode()
#: name -> payload; each is shown after the visible text "V-<name> ".
CORPUS: dict[str, str] = {
    "osc0": "\x1b]0;PWNED-OSC0\x07",
    "osc2": "\x1b]2;PWNED-OSC2\x1b\\",
    "osc52w": f"\x1b]52;c;{CLIP}\x07",
    "osc52q": "\x1b]52;c;?\x07",
    "osc8": "\x1b]8;;https://evil.example/PWNED-OSC8\x1b\\link\x1b]8;;\x1b\\",
    "cls": "\x1b[2JPWNED-CLS",
    "dsr": "\x1b[6nPWNED-DSR",
    "alt": "\x1b[?1049hPWNED-ALT",
    "dcs": "\x1bPPWNED-DCS\x1b\\",
    "apc": "\x1b_PWNED-APC\x1b\\",
    "ris": "\x1bcPWNED-RIS",
    "csi8": "\x9b2JPWNED-CSI8",
    "osc8bit": "\x9d0;PWNED-OSC8BIT\x07",
    "bel": "\x1b]1;PWNED-BEL\x07",
    "bidi": "\u202ePWNED-BIDI\u202c",
    "unterm": "\x1b]0;PWNED-UNTERM",  # last on its line: an OSC that never ends
}
NAMES = list(CORPUS)


def text(prefix: str, names: list[str]) -> str:
    return f"{prefix} " + " ".join(f"V-{n} {CORPUS[n]}" for n in names)


def q(value: str) -> str:
    """A YAML double-quoted scalar (JSON's escapes are YAML's)."""
    return json.dumps(value)


def flow_source() -> str:
    pairs = [NAMES[i:i + 2] for i in range(0, len(NAMES), 2)]
    logs = "\n".join(f"""  - id: log{i}
    type: io.kestra.plugin.core.log.Log
    message: {q(text(f"LOG{i}", pair))}""" for i, pair in enumerate(pairs))
    return f"""
id: inject
namespace: team.evil
description: {q(text("DESC", ["osc0", "osc52w", "bidi", "unterm"]))}
labels:
  evil: {q(text("LBL", ["osc2", "osc8", "unterm"]))}
tasks:
{logs}
  - id: gate
    type: flowdeck.approval.Request
    title: {q(text("TTL", ["osc0", "dcs", "unterm"]))}
    description: {q(text("ADESC", ["apc", "csi8", "osc52q"]))}
    displayFields: [service]
    rows:
      - {{service: {q(text("ROW", ["osc8bit", "ris", "cls", "unterm"]))}}}
"""


COMMENT = text("CMT", ["osc0", "osc52w", "dsr", "alt", "bel", "bidi", "unterm"])


async def seed(data_dir: Path) -> None:
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={}))
    try:
        await engine.apply_flow(flow_source())
        rejected = await engine.create_execution(
            "team.evil", "inject", labels=[("evil", text("XLBL", ["osc0", "apc"]))])
        for _ in range(500):
            pending = await engine.approvals.list("pending")
            if pending:
                break
            await asyncio.sleep(0.02)
        [approval] = pending
        await engine.approvals.decide(approval.id, approve=False, by="mallory",
                                      comment=COMMENT)
        await engine.wait_until_terminal(rejected.id, timeout=20)
        await engine.create_execution("team.evil", "inject")  # stays waiting for approval
        for _ in range(500):
            if await engine.approvals.list("pending"):
                break
            await asyncio.sleep(0.02)
    finally:
        await engine.close()


ESC, ENTER, DOWN, HOME, END = "\x1b", "\r", "\x1b[B", "\x1b[H", "\x1b[F"


def test_payloads_in_engine_data_never_reach_the_terminal(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    asyncio.run(seed(data_dir))
    deck = Deck(data_dir, tmp_path / "home")
    try:
        # executions list (newest first: the pending run, then the rejected one)
        assert deck.wait_for(b"team.evil.inject", 20), "the list never painted"
        deck.pump(0.5)
        deck.send(DOWN)
        deck.send(ENTER)  # the rejected run: its log has the payload lines and the comment
        assert deck.wait_for(b"V-osc0", 10), "the log pane never painted"
        deck.wait_for(b"CMT", 5)
        deck.pump(0.3)
        deck.send(HOME, 0.4)  # the first lines too (follow shows the end)
        deck.send(END, 0.3)
        deck.send("i", 0.5)   # inputs/outputs (the decision's outputs carry the comment)
        deck.send(ESC, 0.3)
        deck.send(":flows" + ENTER, 0.6)
        deck.send(ENTER)  # the flow: description, labels, source
        assert deck.wait_for(b"DESC", 8), "the flow screen never painted"
        deck.pump(0.3)
        deck.send(ESC, 0.3)
        deck.send(":ap" + ENTER, 0.6)
        deck.send(ENTER)  # the pending approval: title, description, rows
        assert deck.wait_for(b"ROW", 8), "the approval screen never painted"
        deck.pump(0.5)
        deck.send(":q" + ENTER, 0.2)
        assert deck.wait_for(b"\x1b[?1049l", 10), "the deck did not quit"
        assert deck.wait_exit(30), "the deck left the screen but never exited"
    finally:
        code = deck.close()
    raw = bytes(deck.out)
    shown = raw.decode("utf-8", errors="replace")
    assert code == 0, f"the deck exited with {code}:\n{shown[-2000:]}"

    # 1. the lines carrying payloads were painted (otherwise the test proves nothing)
    for field in ("LOG0", "LOG3", "LOG7", "CMT", "DESC", "TTL", "ROW", "XLBL"):
        assert field in shown, f"{field} never appeared on screen"
    painted = {name for name in NAMES if f"V-{name}" in shown}
    assert painted == set(NAMES), f"never painted: {set(NAMES) - painted}"

    # 2. nothing a payload carried reached the terminal as a sequence
    forbidden = [
        rb"\x1b\][^\x07\x1b]*PWNED",          # any OSC (title, icon, link) with a payload
        rb"\x1b\]52;",                        # OSC 52: no clipboard write or query at all
        rb"\x1b\]8;;https://evil",            # a fake hyperlink
        rb"\x1bP", rb"\x1b_", rb"\x1b\^",      # DCS, APC, PM: the deck never sends these
        rb"\x1bc",                            # RIS (full reset)
        rb"\x1b\[6n",                         # a DSR query (its answer would land on stdin)
        rb"\x1b\[2JPWNED", rb"\x1b\[\?1049hPWNED",
    ]
    for pattern in forbidden:
        found = re.search(pattern, raw)
        assert found is None, (
            f"{pattern!r} in the output: {raw[found.start() - 40:found.end() + 40]!r}")
    # 8-bit C1 controls and bidi overrides never appear as characters
    for char in ("\x9b", "\x9d", "\x90", "\x9f", "\u202e", "\u202c", "\u2066", "\u2069"):
        assert char not in shown, f"{char!r} reached the terminal"
    # the alternate screen is entered once (by the deck, at start), never by a payload
    assert raw.count(b"\x1b[?1049h") == 1
    # no title was set at all: the window title is unchanged
    assert re.search(rb"\x1b\][012];", raw) is None

    # 3. the payloads' marker text that is plain text renders inert, as text
    for marker in ("PWNED-CLS", "PWNED-DSR", "PWNED-ALT", "PWNED-RIS", "PWNED-CSI8",
                   "PWNED-BIDI"):
        assert marker in shown, f"{marker} (plain text after a stripped sequence) not shown"
    plain = re.sub(r"\x1b\[[0-9;:?<=>]*[ -/]*[@-~]", "", shown)  # the deck's own CSI (SGR, moves)
    # the contents of stripped sequences are not shown as text, except in the JSON view of
    # inputs/outputs and the YAML source, where the sequence itself is shown escaped
    # (`\u001b]0;PWNED-…`): inert
    for marker in ("PWNED-OSC0", "PWNED-OSC2", "PWNED-DCS", "PWNED-APC", "PWNED-BEL",
                   "PWNED-OSC8BIT", "PWNED-UNTERM"):
        for found in re.finditer(re.escape(marker), plain):
            before = plain[max(0, found.start() - 12):found.start()]
            assert "\\u001b" in before or "\\u009d" in before, (
                f"{marker} leaked as text: {plain[found.start() - 40:found.end() + 10]!r}")


@pytest.fixture(autouse=True)
def _ignore_sigpipe() -> None:  # the child may exit while we write a key
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)
