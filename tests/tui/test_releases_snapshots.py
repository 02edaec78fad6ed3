"""Snapshots of the releases screens at 120x40 and 80x24: the projects, a project (its
releases, the release under the cursor, each environment's deployment and history), the
deploy and approve dialogs, a release's pipeline run with its phases as groups, and a failed
run as a Forge of a profile's own describes it (phases, tasks, steps, the failed step's log).

Deterministic: a fixed ManualClock (moved only while seeding, so the ages differ), fixed ids,
TZ=UTC, no toasts, no cursor blink; the data is made through the app's own backend before the
deck reads it, and each scene waits until the screen is painted and stamped.
"""

from __future__ import annotations

import asyncio
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.core.ids import DeterministicIds
from flowdeck.engine.engine import EngineSettings
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.forge_run import ForgeRunScreen
from flowdeck.tui.screens.pipeline_run import PipelineRunScreen
from flowdeck.tui.screens.release_project import ProjectScreen
from flowdeck.tui.screens.releases import ReleasesScreen
from flowdeck.tui.widgets.release_forms import ApproveDialog, DeployDialog
from tui.deck_forge import IMAGE, PIPELINE, SHA1, SHA2, SHA3, finished_run, person
from tui.deck_helpers import START, screen_text, wait_for

SIZES = [(120, 40), (80, 24)]
BROKEN = """
id: broken
namespace: pipelines.acme
tasks:
  - id: build
    type: io.kestra.plugin.core.log.Log
    message: compiled
  - id: test
    type: io.kestra.plugin.core.execution.Fail
    errorMessage: 3 tests failed
  - id: release
    type: io.kestra.plugin.core.log.Log
    message: never
"""


def deck(tmp: Path) -> FlowdeckApp:
    clock = ManualClock(START)
    settings = EngineSettings(data_dir=tmp / "data", scheduler=False, envs={})
    backend = EmbeddedBackend(settings, clock=clock, ids=DeterministicIds())

    async def seed(backend: Backend) -> None:
        await backend.apply_flow(PIPELINE)
        alice, carol = await person(backend, "alice"), await person(backend, "carol")
        run = await finished_run(alice, SHA1)
        first = await alice.create_release("acme/shop", "api", SHA1, [IMAGE],
                                           pipeline_run_id=run.id, tag="v1.0.0")
        await alice.create_release("acme/shop", "web", SHA1, [])
        await alice.deploy(first.id, "dev")
        clock.advance(timedelta(hours=3))
        second = await alice.create_release("acme/shop", "api", SHA2, [IMAGE], tag="v1.1.0")
        await alice.deploy(second.id, "dev")
        await alice.deploy(first.id, "staging")
        clock.advance(timedelta(minutes=40))
        await alice.create_release("acme/shop", "api", SHA3, [IMAGE])
        approval = await carol.approve(first.id, "production", "CAB-7 signed off")
        await alice.deploy(first.id, "production", approval.id)
        await carol.approve(second.id, "production", "CAB-8 signed off")
        await backend.apply_flow(BROKEN)
        broken = await alice.create_run("acme/broken", "main", SHA3, trigger_type="push")
        while (await alice.run(broken.id)).status != "failed":
            await asyncio.sleep(0.02)
        clock.advance(timedelta(seconds=30))

    return FlowdeckApp(backend, clock=clock, user="tester", save_dir=tmp, show_toasts=False,
                       refresh_seconds=3600, startup=seed, close_backend=True,
                       initial="releases")


async def go_projects(pilot: Pilot[Any]) -> None:
    app: Any = pilot.app
    await wait_for(lambda: app.connection == "connected", timeout=20)
    screen = await wait_for(lambda: isinstance(app.screen, ReleasesScreen) and app.screen)
    await wait_for(lambda: screen.loaded and screen.source.row_count() == 2, timeout=20)
    await wait_for(lambda: "updated 0s ago" in screen_text(app))


async def go_project(pilot: Pilot[Any]) -> None:
    await go_projects(pilot)
    app: Any = pilot.app
    await pilot.press("enter")
    project = await wait_for(lambda: isinstance(app.screen, ProjectScreen) and app.screen)
    await wait_for(lambda: project.loaded and project.source.row_count() == 3)
    await pilot.press("j")  # release 2: approved for production, running in dev
    await wait_for(lambda: "CAB-8" in screen_text(app) and "updated 0s ago" in screen_text(app))


async def go_deploy(pilot: Pilot[Any]) -> None:
    await go_project(pilot)
    app: Any = pilot.app
    await pilot.press("d")
    dialog = await wait_for(lambda: isinstance(app.screen, DeployDialog) and app.screen)
    await pilot.press("down", "down")
    await wait_for(lambda: "approval of carol" in str(dialog.query_one("#plan").render()))


async def go_approve(pilot: Pilot[Any]) -> None:
    await go_project(pilot)
    app: Any = pilot.app
    await pilot.press("k")  # release 3: not approved yet
    await pilot.press("a")
    dialog = await wait_for(lambda: isinstance(app.screen, ApproveDialog) and app.screen)
    await pilot.press(*"CAB-9")
    await wait_for(lambda: dialog.query_one("#justification").value == "CAB-9")


async def go_run(pilot: Pilot[Any]) -> None:
    await go_project(pilot)
    app: Any = pilot.app
    await pilot.press("j")  # release 1, from the pipeline run
    await pilot.press("o")
    run = await wait_for(lambda: isinstance(app.screen, PipelineRunScreen) and app.screen)
    await wait_for(lambda: run.run is not None and run.log_view.line_count == 4)
    await wait_for(lambda: "phase 3 · release" in screen_text(app))


async def go_forge_run(pilot: Pilot[Any]) -> None:
    await go_projects(pilot)
    app: Any = pilot.app
    client = await person(app.backend, "tester")
    [broken] = (await client.runs("acme/broken")).items
    app.push_screen(ForgeRunScreen(broken.id, client))
    await wait_for(lambda: isinstance(app.screen, ForgeRunScreen) and app.screen.run is not None
                   and "3 tests failed" in screen_text(app) and "updated 0s ago" in
                   screen_text(app))


SCENES = {"projects": go_projects, "project": go_project, "deploy": go_deploy,
          "approve": go_approve, "run": go_run, "forge-run": go_forge_run}


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("name", list(SCENES))
def test_releases_snapshot(snap_compare: Any, name: str, size: tuple[int, int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        assert snap_compare(deck(Path(tmp)), terminal_size=size, run_before=SCENES[name])
