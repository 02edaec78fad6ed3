"""DESIGN §1: imports only go downward. Checked with import-linter on every test run.

The contracts (pyproject.toml) say what we mean: server and client are independent siblings,
configuration is read at the CLI level only, dialects are independent of each other, the
server's shared plumbing and the engine know no dialect. A second test breaks each of them in a
copy of the source tree and expects the linter to say so, so a contract that stopped matching
anything (a renamed package) cannot pass silently.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")
CONTRACTS = (
    "Layers only import downward",
    "Configuration is read at the CLI level only",
    "Dialects are independent of each other",
    "The server's shared plumbing knows no dialect",
    "The engine is free of any dialect",
    "The executor knows no API domain (domains add rules through FlowPolicies)",
)


def lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def test_import_contracts_are_kept() -> None:
    result = lint(ROOT, ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout
    for name in CONTRACTS:
        assert f"{name} KEPT" in result.stdout, name


def test_each_contract_catches_a_stray_import(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "src" / "flowdeck", tmp_path / "src" / "flowdeck",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    package = tmp_path / "src" / "flowdeck"
    strays = {
        "server/deps.py": "import flowdeck.client.http",  # server -> client
        "tui/theme.py": "import flowdeck.config",  # config below the CLI level
        "server/dialects/staging/routes.py": "import flowdeck.server.dialects.kestra.common",
        "server/host.py": "import flowdeck.server.dialects.flowdeck",
        "engine/control.py": "import flowdeck.server.dialects.kestra",
        "engine/launcher.py": "import flowdeck.engine.forge.service",
    }
    for path, line in strays.items():
        module = package / path
        module.write_text(module.read_text() + f"\n{line}  # noqa\n")
    result = lint(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    broken = set(re.findall(r"^(.+) BROKEN$", result.stdout, re.MULTILINE))
    assert set(CONTRACTS) <= broken, result.stdout


# -- size limits: small modules with one job ---------------------------------------------------

SERVER = ROOT / "src" / "flowdeck" / "server"
MAX_ROUTE_MODULE_LINES = 300
MAX_SERVER_FUNCTION_LINES = 60


def test_no_route_module_is_over_300_lines() -> None:
    too_long = {str(path.relative_to(SERVER)): n for path in (SERVER / "dialects").rglob("*.py")
                if (n := len(path.read_text().splitlines())) > MAX_ROUTE_MODULE_LINES}
    assert not too_long, too_long


def test_no_server_function_is_over_60_lines() -> None:
    import ast

    too_long = {}
    for path in SERVER.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_SERVER_FUNCTION_LINES:
                    too_long[f"{path.relative_to(SERVER)}:{node.name}"] = length
    assert not too_long, too_long


def test_the_engine_facade_stays_under_400_lines() -> None:
    engine = ROOT / "src" / "flowdeck" / "engine" / "engine.py"
    assert len(engine.read_text().splitlines()) < 400
