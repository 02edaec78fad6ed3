"""The `:rel` screens over a real engine (and a live server): projects, a project's releases
and environments, live updates from the event log, deploy (a production deploy without an
approval joins the approval queue), approve, revoke with a confirmation, the pipeline run with
phases as groups, what is hidden from whom, and a Kestra that has no releases."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pytest

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.core.clock import ManualClock
from flowdeck.tui.app import FlowdeckApp
from flowdeck.tui.screens.forge_run import ForgeRunScreen
from flowdeck.tui.screens.pipeline_run import PipelineRunScreen
from flowdeck.tui.screens.release_project import ProjectScreen
from flowdeck.tui.screens.releases import ReleasesScreen
from flowdeck.tui.widgets.confirm import ConfirmScreen
from flowdeck.tui.widgets.release_forms import ApproveDialog, DeployDialog
from tui.deck_forge import SHA3, person, seed
from tui.deck_helpers import both_backends, make_app, screen_text, wait_for


async def open_releases(app: FlowdeckApp, pilot: Any) -> ReleasesScreen:
    await wait_for(lambda: app.connection == "connected")
    await pilot.press("colon")
    await wait_for(lambda: app.screen.__class__.__name__ == "CommandPrompt")
    await pilot.press("r", "e", "l", "enter")
    screen: ReleasesScreen = await wait_for(
        lambda: isinstance(app.screen, ReleasesScreen) and app.screen.loaded and app.screen)
    return screen


async def open_project(app: FlowdeckApp, pilot: Any, rows: int = 2) -> ProjectScreen:
    screen = await open_releases(app, pilot)
    await wait_for(lambda: screen.source.row_count() == 2)
    assert screen.table.current_key() == "acme/shop/api"
    await pilot.press("enter")
    project: ProjectScreen = await wait_for(
        lambda: isinstance(app.screen, ProjectScreen) and app.screen.loaded and app.screen)
    await wait_for(lambda: project.source.row_count() == rows)
    return project


@both_backends
async def test_projects_then_a_project_and_live_updates(backend: Backend, clock: ManualClock,
                                                        tmp_path: Path) -> None:
    _, second = await seed(backend)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await open_releases(app, pilot)
        await wait_for(lambda: screen.source.row_count() == 2)
        row = await wait_for(lambda: next((line for line in screen_text(app).splitlines()
                                           if line.startswith("acme/shop/api")), None))
        assert "PRODUCTION" in screen_text(app)
        assert row.split()[1:3] == ["#2", second.commit_sha[:7]]
        assert row.split()[-3:] == ["#2", "#1", "-"]  # dev, staging, production
        project = await open_project(app, pilot)
        await wait_for(lambda: "before: #1" in screen_text(app))
        text = screen_text(app)
        assert "Releases of acme/shop/api (2 of 2, newest first)" in text
        assert "nothing deployed" in text
        # a release and a deployment by someone else appear without a reload
        bob = await person(backend, "bob")
        third = await bob.create_release("acme/shop", "api", SHA3, [])
        await wait_for(lambda: project.source.row_count() == 3, timeout=20)
        assert project.table.current_key() == second.id  # the cursor stayed on its release
        await bob.deploy(third.id, "staging")
        await wait_for(lambda: any(v.name == "staging" and v.current is not None
                                   and v.current.release_id == third.id
                                   for v in project.env_views), timeout=20)
        await pilot.press("escape")
        await wait_for(lambda: app.screen is screen)
        await wait_for(lambda: "#3" in screen_text(app))


async def test_deploy_request_approve_revoke_and_deploy(backend: EmbeddedBackend,
                                                       clock: ManualClock,
                                                       tmp_path: Path) -> None:
    first, second = await seed(backend)
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        project = await open_project(app, pilot)
        # deploy #2 to staging through the dialog: enter only moves to Cancel, y deploys
        await pilot.press("d")
        dialog = await wait_for(lambda: isinstance(app.screen, DeployDialog) and app.screen)
        await pilot.press("down", "enter")
        await wait_for(lambda: app.focused is not None and app.focused.id == "cancel")
        await pilot.press("y")
        await wait_for(lambda: not isinstance(app.screen, DeployDialog))
        await wait_for(lambda: any(v.name == "staging" and v.current is not None and
                                   v.current.release_id == second.id and
                                   v.current.deployed_by == "tester"
                                   for v in project.env_views))
        # production without an approval: a deploy request in the approval queue
        await pilot.press("d")
        dialog = await wait_for(lambda: isinstance(app.screen, DeployDialog) and app.screen)
        await pilot.press("down", "down")
        await wait_for(lambda: "approval queue" in str(dialog.query_one("#plan").render()))
        await pilot.press("y")
        await wait_for(lambda: app.pending_approvals == 1, timeout=20)
        assert "Deploy acme/shop/api release 2 to production" in str(
            app.pending_list()[0].title)
        # approve (someone else than alice), then revoke with a confirmation
        await pilot.press("a")
        approve = await wait_for(lambda: isinstance(app.screen, ApproveDialog) and app.screen)
        await pilot.press("y")  # typed into the box: nothing is approved yet
        await pilot.press("ctrl+u", "ctrl+s")
        await wait_for(lambda: "justification is required" in str(
            approve.query_one("#problem").render()))
        await pilot.press(*"CAB-12", "enter")
        await wait_for(lambda: app.focused is not None and app.focused.id == "cancel")
        await pilot.press("y")
        await wait_for(lambda: (project.approvals.get(second.id) or {}).get("production")
                       is not None)
        approval = project.approvals[second.id]["production"]
        assert approval is not None
        assert (approval.approver, approval.justification) == ("tester", "CAB-12")
        assert "production approval: active by tester" in screen_text(app)
        await pilot.press("x")
        confirm = await wait_for(lambda: isinstance(app.screen, ConfirmScreen) and app.screen)
        assert "Release 2 of acme/shop/api for production" in str(
            confirm.query_one(".body").render())
        await pilot.press("y")
        await wait_for(lambda: "production approval: revoked by tester" in screen_text(app))
        # approve again and deploy with it
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, ApproveDialog))
        await pilot.press(*"CAB-13", "ctrl+s")
        await wait_for(lambda: project.active_approval(second) is not None)
        await pilot.press("d")
        dialog = await wait_for(lambda: isinstance(app.screen, DeployDialog) and app.screen)
        await pilot.press("down", "down")
        await wait_for(lambda: "with the approval of tester" in str(
            dialog.query_one("#plan").render()))
        await pilot.press("y")
        await wait_for(lambda: any(v.name == "production" and v.current is not None
                                   for v in project.env_views))
        # the run, phases as groups
        await pilot.press("j")
        await wait_for(lambda: project.table.current_key() == first.id)
        await pilot.press("o")
        run = await wait_for(lambda: isinstance(app.screen, PipelineRunScreen) and app.screen)
        await wait_for(lambda: run.run is not None and "phase 3 · release" in screen_text(app))
        text = screen_text(app)
        assert text.index("phase 1 · discover") < text.index("phase 2 · ci") < text.index(
            "  api") < text.index("phase 3 · release")


async def test_what_is_hidden_from_whom(backend: EmbeddedBackend, clock: ManualClock,
                                       tmp_path: Path) -> None:
    await seed(backend)
    mine = await (await person(backend, "tester")).create_release("acme/shop", "api", SHA3, [])
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        project = await open_project(app, pilot, rows=3)
        assert project.table.current_key() == mine.id
        await wait_for(lambda: mine.id in project.approvals)
        assert project.check_action("approve_release", ()) is False  # its creator
        assert project.check_action("deploy_release", ())
        assert project.check_action("revoke_approval", ()) is None  # nothing to revoke
        await pilot.press("a")
        assert not isinstance(app.screen, ApproveDialog)
        await pilot.press("j")
        await wait_for(lambda: project.check_action("approve_release", ()) is True)
        app.read_only = True
        for action in ("approve_release", "deploy_release", "revoke_approval"):
            assert not project.check_action(action, ())
        assert project.check_action("reload", ())


async def test_a_kestra_has_no_releases(clock: ManualClock, tmp_path: Path) -> None:
    from client.test_http_kestra_recorded import KestraReplay

    backend = KestraReplay.load("2.0.0").backend(poll_interval=1.0)  # not a 10 ms spin
    app = make_app(backend, clock, tmp_path, close_backend=True)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_releases(app, pilot)
        assert screen.unavailable
        await wait_for(lambda: "a Kestra server has no releases API" in " ".join(
            screen_text(app).split()))


def test_a_profiles_own_forge_reaches_the_deck(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """`[profiles.NAME.forge]`: the deck reads that profile's releases from its own Forge,
    with the token the profile names (and says which variable is missing)."""
    from flowdeck.cli.common import UsageError
    from flowdeck.cli.deck import build_deck
    from flowdeck.config import load_settings

    config = tmp_path / "config.toml"
    config.write_text('[profiles.split]\nurl = "http://127.0.0.1:9"\n'
                      '[profiles.split.forge]\nurl = "http://127.0.0.1:8"\n'
                      'token_env = "DECK_FORGE_TOKEN"\nprojects = ["acme/shop/api"]\n')
    settings = load_settings(str(config))
    args = argparse.Namespace(serve=None, url=None, profile="split", read_only=None,
                              demo=False)
    monkeypatch.delenv("DECK_FORGE_TOKEN", raising=False)
    with pytest.raises(UsageError, match="DECK_FORGE_TOKEN is not set"):
        build_deck(args, settings)
    monkeypatch.setenv("DECK_FORGE_TOKEN", "t0k3n")
    app, _ = build_deck(args, settings)
    assert app.forge is not None
    assert (app.forge.url, app.forge.token, app.forge.projects) == (
        "http://127.0.0.1:8", "t0k3n", ("acme/shop/api",))


async def test_the_demo_shows_releases(backend: EmbeddedBackend, clock: ManualClock,
                                       tmp_path: Path) -> None:
    """`make run` (`flowdeck --demo`): the example pipeline for example/shop, a run of it and
    a demo release deployed to dev; a second start makes no second release."""
    from flowdeck.cli.deck import seed_demo, seed_demo_release

    app = make_app(backend, clock, tmp_path, startup=seed_demo, initial="releases")
    async with app.run_test(size=(120, 40)):
        screen = await wait_for(lambda: isinstance(app.screen, ReleasesScreen) and app.screen)
        await wait_for(lambda: screen.source.row_count() == 1, timeout=20)
        row = await wait_for(lambda: next((line for line in screen_text(app).splitlines()
                                           if line.startswith("example/shop/api")), None))
        assert row.split()[1] == "#1" and row.split()[-3:] == ["#1", "-", "-"]
    await seed_demo_release(backend)
    overview = await (await person(backend, "x")).overview()
    assert [p.releases for p in overview.projects] == [1]
    [release] = (await (await person(backend, "x")).releases("example/shop", "api")).items
    assert release.pipeline_run_id is not None and release.tag == "v0.1.0"


@pytest.mark.parametrize("role", ["viewer", "operator"])
async def test_a_role_hides_what_it_may_not_do(role: str, clock: ManualClock,
                                              tmp_path: Path) -> None:
    """A viewer may not deploy, approve or revoke; an operator deploys but neither approves
    nor revokes (both need the approver role): hidden from the footer and inert."""
    from tui.deck_helpers import make_backend
    from tui.test_quit_and_roles import RoleBackend

    plain = make_backend(tmp_path / "data", clock)
    backend = RoleBackend(plain.settings, clock=clock)
    backend.role = role
    await backend.connect()
    try:
        first, _ = await seed(backend)
        await (await person(backend, "carol")).approve(first.id, "production", "CAB-1")
        app = make_app(backend, clock, tmp_path)
        async with app.run_test(size=(120, 40)) as pilot:
            project = await open_project(app, pilot)
            await wait_for(lambda: app.role == role)
            await pilot.press("j")
            await wait_for(lambda: project.table.current_key() == first.id
                           and project.active_approval(first) is not None)
            assert not project.check_action("approve_release", ())
            assert not project.check_action("revoke_approval", ())
            assert bool(project.check_action("deploy_release", ())) == (role == "operator")
            footer = screen_text(app).splitlines()[-1]
            assert "Approve" not in footer and "Revoke" not in footer
            assert ("Deploy" in footer) == (role == "operator")
            assert "Open run" in footer
            await pilot.press("a", "x")
            if role == "viewer":
                await pilot.press("d")
            await wait_for(lambda: app.screen is project)
            assert not isinstance(app.screen, (ApproveDialog, ConfirmScreen, DeployDialog))
    finally:
        await backend.close()


async def test_a_kestra_with_a_forge_of_its_own(clock: ManualClock, tmp_path: Path) -> None:
    """A profile on a Kestra whose releases come from a separate Forge URL with its own token,
    a server that has only the document's routes: the projects come from the profile's list,
    a release and an approval made meanwhile appear on the refresh beat (no event log to
    follow), and a deploy from the deck is recorded as the Forge token's name."""
    import dataclasses

    from client.test_http_kestra_recorded import KestraReplay
    from client.test_releases_client import SHA, documented_routes, remote
    from flowdeck.client.releases import ForgeEndpoint
    from flowdeck.server.dialects import DEFAULT_DIALECTS, forge

    plain = dataclasses.replace(forge.DIALECT, routes=documented_routes)
    dialects = [d for d in DEFAULT_DIALECTS if d.name != "forge"] + [plain]
    async with remote(tmp_path, dialects) as (who, url, secrets):
        alice = who("alice")
        first = await alice.create_release("acme/shop", "api", SHA)
        endpoint = ForgeEndpoint(url, token=secrets["carol"],
                                 projects=("acme/shop/api", "acme/shop/web"),
                                 environments=("dev", "staging"))
        # polled once a second: the replay answers at once, so the default 10 ms would spin
        backend = KestraReplay.load("2.0.0").backend(poll_interval=1.0)
        app = make_app(backend, clock, tmp_path, close_backend=True, forge=endpoint,
                       refresh_seconds=0.5)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_releases(app, pilot)
            assert not screen.unavailable
            await wait_for(lambda: screen.source.row_count() == 2)
            await wait_for(lambda: "read every 0.5s" in screen_text(app))
            await pilot.press("enter")
            project: ProjectScreen = await wait_for(
                lambda: isinstance(app.screen, ProjectScreen) and app.screen.loaded
                and app.screen)
            await wait_for(lambda: project.source.row_count() == 1)
            assert project.client.identity == "carol"  # the Forge token's name
            run = await alice.create_run("acme/shop", "main", "fedcba9876543210")
            async with asyncio.timeout(20):
                while (await alice.run(run.id)).status != "success":
                    await asyncio.sleep(0.05)
            await alice.create_release("acme/shop", "api", "fedcba9876543210",
                                       pipeline_run_id=run.id)
            await wait_for(lambda: project.source.row_count() == 2, timeout=20)
            assert project.table.current_key() == first.id
            # its run is not an execution of the Kestra: drawn from the Forge's answer
            await pilot.press("k", "o")
            shown = await wait_for(lambda: isinstance(app.screen, ForgeRunScreen)
                                   and app.screen.run is not None and app.screen)
            text = await wait_for(lambda: "phase 2 · release" in screen_text(app)
                                  and screen_text(app))
            assert f"acme/shop  run {run.id}  SUCCESS" in text
            assert text.index("phase 1 · build") < text.index("- attempt 1  SUCCESS  exit 0")
            assert shown.run_id == run.id
            await pilot.press("escape")
            await wait_for(lambda: app.screen is project)
            await pilot.press("j")
            await wait_for(lambda: project.table.current_key() == first.id)
            # an approval made elsewhere shows on the same beat
            await who("carol").approve(first.id, "production", "CAB-7")
            await wait_for(lambda: "production approval: active by carol" in screen_text(app),
                           timeout=20)
            await pilot.press("d")
            dialog = await wait_for(lambda: isinstance(app.screen, DeployDialog) and app.screen)
            await pilot.press("down")
            await wait_for(lambda: "staging" in str(dialog.query_one("#plan").render()))
            await pilot.press("y")
            await wait_for(lambda: any(v.name == "staging" and v.current is not None
                                       and v.current.deployed_by == "carol"
                                       for v in project.env_views), timeout=20)


async def test_a_forge_tokens_role_decides_there(clock: ManualClock, tmp_path: Path) -> None:
    """Releases from a profile's own Forge with a viewer's token: the Kestra says nothing of
    roles, the Forge's token reads only, so deploy, approve and revoke are hidden and inert."""
    from client.test_http_kestra_recorded import KestraReplay
    from client.test_releases_client import SHA, remote
    from flowdeck.client.releases import ForgeEndpoint

    async with remote(tmp_path) as (who, url, secrets):
        await who("alice").create_release("acme/shop", "api", SHA)
        endpoint = ForgeEndpoint(url, token=secrets["vic"])
        backend = KestraReplay.load("2.0.0").backend(poll_interval=1.0)
        app = make_app(backend, clock, tmp_path, close_backend=True, forge=endpoint)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = await open_releases(app, pilot)
            await wait_for(lambda: screen.source.row_count() == 1)
            await pilot.press("enter")
            project: ProjectScreen = await wait_for(
                lambda: isinstance(app.screen, ProjectScreen) and app.screen.loaded
                and app.screen.source.row_count() == 1 and app.screen)
            assert app.role is None and project.client.role == "viewer"
            for action in ("deploy_release", "approve_release", "revoke_approval"):
                assert not project.check_action(action, ())
            footer = screen_text(app).splitlines()[-1]
            assert "Deploy" not in footer and "Approve" not in footer
            await pilot.press("d", "a")
            assert app.screen is project


async def test_a_deploy_request_decided_in_the_approval_queue(backend: EmbeddedBackend,
                                                             clock: ManualClock,
                                                             tmp_path: Path) -> None:
    """A production deploy request waits in `:ap` beside execution approvals; approving it
    there (someone other than the release's creator) deploys the release, and the releases
    screen shows it running in production."""
    from flowdeck.tui.screens.approvals import ApprovalsScreen
    from flowdeck.tui.widgets.confirm import DecisionScreen

    _, second = await seed(backend)
    await (await person(backend, "bob")).request_deploy(second.id, "production")
    app = make_app(backend, clock, tmp_path)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(lambda: app.connection == "connected")
        app.run_command(":ap")
        queue = await wait_for(lambda: isinstance(app.screen, ApprovalsScreen)
                               and app.screen.table.current_key() is not None and app.screen)
        await wait_for(lambda: "flowdeck.forge.deploy-request" in screen_text(app)
                       and "Deploy acme/shop/api release 2 to produc" in screen_text(app))
        await pilot.press("a")
        await wait_for(lambda: isinstance(app.screen, DecisionScreen))
        await pilot.press(*"CAB-20", "ctrl+s")
        await wait_for(lambda: app.screen is queue and app.pending_approvals == 0, timeout=20)
        project = await open_project(app, pilot)
        await wait_for(lambda: any(v.name == "production" and v.current is not None
                                   and v.current.release_id == second.id
                                   for v in project.env_views), timeout=20)
