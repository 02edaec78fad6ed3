"""A data dir with the public API's activity, made once, copied for each deck test.

Seeded through a real engine with a fixed clock, ids and key secrets (the secrets fix the
keys' display prefixes): three keys (one with a webhook to 127.0.0.1:9, where nothing
listens, one limited to the agent with an expiry, one revoked), then the bundled agent run by
the first key twice. The first run's `started` and `pending_approval` deliveries fail four
times (the clock moved through the 1 s, 5 s and 15 s retries) and are dead; at `FINAL` the
second run waits for its approval, the first is approved and completes (its two messages go
to the local outbox), and the three new deliveries have failed once, due again at FINAL + 1 s.
Nothing is due at FINAL, so a deck opened on a copy with its clock at FINAL shows exactly this.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.ids import DeterministicIds
from flowdeck.engine.engine import Engine, EngineSettings
from helpers import wait_for_state
from public.support import AGENT, customers
from tui.deck_helpers import START

HOOK = "http://127.0.0.1:9/hook"
FINAL = START + timedelta(seconds=81)
#: Ids the deck's own engine makes start far from the seeded ones.
APP_IDS_MS = 1_900_000_000_000
EXTRA = {"webhooks": {"allow_private_targets": True}}


@dataclass(frozen=True)
class Seeded:
    data_dir: Path
    first: str  # the approved, completed run
    second: str  # the run waiting for its approval
    website: str  # key ids
    partner: str
    retired: str
    secrets: tuple[str, ...]


@contextlib.contextmanager
def fixed_secrets() -> Iterator[None]:
    """The key store's `secrets.token_hex` as a counter while keys are made (their prefixes
    are shown); only the key store's own reference is replaced."""
    import flowdeck.engine.public.keys as keys_module

    counter = itertools.count(1)
    original = keys_module.secrets
    keys_module.secrets = SimpleNamespace(  # type: ignore[assignment]
        token_hex=lambda n=32: f"{next(counter):02d}c0ffee".ljust(2 * n, "a"))
    try:
        yield
    finally:
        keys_module.secrets = original


async def attempts(engine: Engine, wanted: int, count: int) -> None:
    """Until `count` deliveries have had `wanted` attempts recorded."""
    async with asyncio.timeout(15):
        while True:
            found, _ = await engine.outbox.deliveries()
            if sum(1 for d in found if d.attempts >= wanted) >= count:
                return
            await asyncio.sleep(0.02)


async def seed(data_dir: Path) -> Seeded:
    clock = ManualClock(START)
    engine = await Engine.open(EngineSettings(data_dir=data_dir, scheduler=False, envs={},
                                              extra=EXTRA), clock=clock, ids=DeterministicIds())
    try:
        await engine.public.install_bundled_agents()
        with fixed_secrets():
            website = await engine.public.create_key("website", webhook_url=HOOK,
                                                     webhook_secret="signing-secret")
            partner = await engine.public.create_key("partner", workflows=[AGENT],
                                                     usage_limit=50,
                                                     expires_in=timedelta(days=30))
            retired = await engine.public.create_key("retired")
        await engine.public.revoke_key(retired.key.id)
        key = await engine.public.authenticate(website.secret)
        first = await engine.public.execute(key, AGENT, {"csvData": customers(2)},
                                            "Spring campaign")
        await wait_for_state(engine, first.execution_id, "PAUSED", timeout=15)
        await attempts(engine, 1, 2)
        for number, delay in enumerate((1, 5, 15), start=2):
            clock.advance(timedelta(seconds=delay))
            engine.outbox.wake()
            await attempts(engine, number, 2)
        clock.set(FINAL)
        second = await engine.public.execute(key, AGENT, {"csvData": customers(3)})
        await wait_for_state(engine, second.execution_id, "PAUSED", timeout=15)
        await engine.public.approve(key, first.execution_id, by="API key website",
                                    comment="Looks good")
        await engine.wait_until_terminal(first.execution_id, timeout=15)
        await attempts(engine, 1, 5)
    finally:
        await engine.close()
    return Seeded(data_dir, first.execution_id, second.execution_id, website.key.id,
                  partner.key.id, retired.key.id,
                  (website.secret, partner.secret, retired.secret))


def seeded_copy(template: Seeded, where: Path) -> Seeded:
    target = where / "data"
    shutil.copytree(template.data_dir, target)
    return Seeded(target, template.first, template.second, template.website,
                  template.partner, template.retired, template.secrets)


def deck_backend(seeded: Seeded, clock: ManualClock | None = None) -> EmbeddedBackend:
    settings = EngineSettings(data_dir=seeded.data_dir, scheduler=False, envs={}, extra=EXTRA)
    return EmbeddedBackend(settings, clock=clock or ManualClock(FINAL),
                           ids=DeterministicIds(APP_IDS_MS))


def final_time() -> datetime:
    return FINAL
