"""`flowdeck release|deploy|pipeline`: the real entry point in subprocesses, on the engine in
a data dir (`--by` names who acts) and with `--url` against one real `flowdeck serve` whose
tokens name who acts, and through a profile whose releases come from a Forge URL of their own.
Exit codes: 0 done, 2 a refused input (a bad value, the production gate), 1 otherwise."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cli.test_cli_remote import clean_env, flowdeck_serve
from flowdeck.core.forge import example_pipeline_sources

SHA = "abc1234def5678"
SLOW = """\
id: slow
namespace: pipelines.acme
tasks:
  - id: ci
    type: io.kestra.plugin.core.flow.Sleep
    duration: PT60S
"""


def flowdeck(root: Path, *args: str, env: dict[str, str] | None = None,
             timeout: float = 60) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "flowdeck.cli", *args]
    return subprocess.run(argv, capture_output=True, text=True, encoding="utf-8",
                          timeout=timeout, env={**clean_env(root / "home"), **(env or {})})


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, (result.stdout, result.stderr)
    assert result.stderr == ""
    return result.stdout


def refused(result: subprocess.CompletedProcess[str], code: int) -> str:
    """Exit `code` with exactly one `flowdeck: ...` line on stderr, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowdeck: "), result.stderr
    return lines[0]


def test_releases_on_the_engine_in_the_data_dir(tmp_path: Path) -> None:
    data = str(tmp_path / "d")
    flows = tmp_path / "shop.yml"
    flows.write_text(example_pipeline_sources()[0], encoding="utf-8")

    def fd(*args: str) -> subprocess.CompletedProcess[str]:
        return flowdeck(tmp_path, "--data-dir", data, *args)

    ok(fd("flow", "apply", str(flows)))
    run = json.loads(ok(fd("pipeline", "run", "example/shop", "--branch", "main", "--sha",
                           SHA, "--trigger-type", "push", "--json")))
    assert run["status"] == "success" and run["triggered_by"] == "grace"
    assert [p["name"] for p in run["phases"]] == ["discover", "ci", "artifacts", "release"]
    shown = ok(fd("pipeline", "show", run["id"][-8:]))
    assert shown.startswith(f"run {run['id']} of example/shop (main @ {SHA[:12]}): success")
    assert re.search(r"^  2\. ci\s+success$", shown, re.M)
    listed = json.loads(ok(fd("pipeline", "list", "example/shop", "--json")))
    assert listed["total"] == 1 and listed["runs"][0]["id"] == run["id"]

    made = json.loads(ok(fd("release", "create", "example/shop/api", "--sha", SHA, "--tag",
                            "v1.0.0", "--run", run["id"], "--artifact",
                            "api:container:registry.example.com/shop/api:abc1234",
                            "--by", "alice", "--json")))
    assert (made["release_number"], made["created_by"], made["tag"]) == (1, "alice", "v1.0.0")
    assert made["trigger"] == {"trigger_type": "tag", "branch": "main", "triggered_by": "grace"}
    assert "already exists" in refused(fd("release", "create", "example/shop/api", "--sha",
                                          SHA), 1)
    assert "commit_sha" in refused(fd("release", "create", "example/shop/api", "--sha",
                                      "nothex"), 2)
    assert "write OWNER/NAME/PROJECT" in refused(fd("release", "create", "shop", "--sha",
                                                    SHA), 2)
    assert ok(fd("deploy", "example/shop/api/v1.0.0", "dev")).startswith("deployment ")
    gate = refused(fd("deploy", "example/shop/api", "production"), 2)
    assert "needs the approval_id" in gate and "--request" in gate
    assert "cannot approve" in refused(fd("release", "approve", "example/shop/api/1",
                                          "production", "--justification", "mine", "--by",
                                          "alice"), 2)
    approval = json.loads(ok(fd("release", "approve", "example/shop/api/1", "production",
                                "--justification", "CAB-9", "--by", "carol", "--json")))
    assert (approval["approver"], approval["status"]) == ("carol", "active")
    spare = json.loads(ok(fd("release", "approve", "example/shop/api/1", "production",
                             "--justification", "spare", "--by", "carol", "--json")))
    deployed = json.loads(ok(fd("deploy", "example/shop/api/1", "production", "--approval",
                                approval["approval_id"], "--json")))
    assert deployed["status"] == "active" and deployed["approval_id"] == approval["approval_id"]
    assert "already used" in refused(fd("deploy", "example/shop/api/1", "production",
                                        "--approval", approval["approval_id"]), 2)
    assert ok(fd("release", "revoke", spare["approval_id"], "--by", "dave")) == (
        f"approval {spare['approval_id']} revoked by dave\n")
    request = ok(fd("deploy", "example/shop/api/1", "production", "--request"))
    assert "waits in the approval queue" in request
    assert "Deploy example/shop/api release 1 to production" in ok(fd("approvals", "list"))

    table = ok(fd("release", "list")).splitlines()
    assert table[0].split() == ["PROJECT", "RELEASES", "LATEST", "SHA", "DEV", "STAGING",
                                "PRODUCTION"]
    assert table[1].split() == ["example/shop/api", "1", "1", SHA[:7], "1", "-", "1"]
    releases = json.loads(ok(fd("release", "list", "example/shop/api", "--json")))
    assert [r["release_number"] for r in releases["releases"]] == [1]
    shown = json.loads(ok(fd("release", "show", "example/shop/api/v1.0.0", "--json")))
    assert sorted(shown["deployed"]) == ["dev", "production"]
    assert shown["approvals"]["production"]["approval_id"] == spare["approval_id"]
    assert "no release 'v9' of example/shop/api" in refused(
        fd("release", "show", "example/shop/api/v9"), 2)


@dataclass
class Served:
    root: Path
    url: str
    tokens: dict[str, str]

    def __call__(self, who: str, *args: str) -> subprocess.CompletedProcess[str]:
        return flowdeck(self.root, "--data-dir", str(self.root / "unused"), "--url", self.url,
                        *args, env={"FLOWDECK_TOKEN": self.tokens[who]})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("forge-cli")
    data = str(root / "server-data")
    tokens = {}
    for name, role in (("alice", "operator"), ("carol", "approver")):
        out = json.loads(ok(flowdeck(root, "--data-dir", data, "token", "create", "--role",
                                     role, "--name", name, "--json")))
        tokens[name] = out["token"]
    slow = root / "slow.yml"
    slow.write_text(SLOW, encoding="utf-8")
    ok(flowdeck(root, "--data-dir", data, "flow", "apply", str(slow)))
    with flowdeck_serve(root, clean_env(root / "home")) as url:
        yield Served(root, url, tokens)


def test_releases_over_http_record_the_tokens_name(served: Served) -> None:
    made = json.loads(ok(served("alice", "release", "create", "acme/shop/api", "--sha", SHA,
                                "--json")))
    assert made["created_by"] == "alice"
    assert "--by is for the engine" in refused(served("alice", "release", "create",
                                                      "acme/shop/api", "--sha", "1234567",
                                                      "--by", "mallory"), 2)
    assert "may not POST /v1/approvals" in refused(served(
        "alice", "release", "approve", "acme/shop/api/1", "production", "--justification",
        "x"), 2)
    approval = json.loads(ok(served("carol", "release", "approve", "acme/shop/api/1",
                                    "production", "--justification", "CAB-1", "--json")))
    assert approval["approver"] == "carol"
    deployed = ok(served("alice", "deploy", "acme/shop/api/1", "production", "--approval",
                         approval["approval_id"]))
    assert re.fullmatch(r"deployment \S+ of release 1 to production: active "
                        r"\(GitOps commit [0-9a-f]{12}\)\n", deployed)
    shown = json.loads(ok(served("carol", "release", "show", "acme/shop/api", "--json")))
    assert shown["deployed"]["production"]["deployed_by"] == "alice"


def test_a_pipeline_run_cancelled_over_http(served: Served) -> None:
    started = ok(served("alice", "pipeline", "run", "acme/slow", "--branch", "main", "--sha",
                        SHA))
    match = re.fullmatch(r"run (\S+) pending\n", started)
    assert match, started
    cancelled = json.loads(ok(served("alice", "pipeline", "cancel", match.group(1)[:8],
                                     "--json")))
    assert cancelled["status"] == "cancelled"
    assert cancelled["phases"][0]["status"] == "failed"
    assert "already cancelled" in refused(served("alice", "pipeline", "cancel",
                                                 match.group(1)), 1)


def test_a_profiles_own_forge(served: Served, tmp_path: Path) -> None:
    ok(served("alice", "release", "create", "acme/shop/web", "--sha", SHA))
    config = tmp_path / "config.toml"
    config.write_text(
        '[profiles.split]\nkind = "remote"\nurl = "http://127.0.0.1:9"\n'
        f'[profiles.split.forge]\nurl = "{served.url}"\ntoken_env = "FORGE_TOKEN"\n',
        encoding="utf-8")
    args = ("--config", str(config), "--profile", "split", "release", "list", "--json")
    out = json.loads(ok(flowdeck(tmp_path, *args, env={"FORGE_TOKEN": served.tokens["carol"]})))
    assert ("acme/shop", "web") in {(p["repository"], p["project"]) for p in out["projects"]}
    unset = refused(flowdeck(tmp_path, *args), 2)
    assert "profiles.split.forge.token_env: environment variable FORGE_TOKEN is not set" in unset
