"""The parser: global options before or after the command, `--json` where it applies, and a
`--help` for every group that lists its actions. One real subprocess for each README line."""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cli.test_cli_remote import URL_LINE, clean_env
from flowdeck.cli import build_parser, main


@pytest.mark.parametrize("argv", [
    ["--data-dir", "D", "executions", "list"],
    ["executions", "list", "--data-dir", "D"],
    ["executions", "--data-dir", "D", "list"],
    ["serve", "--data-dir", "D", "--port", "0"],
    ["run", "ns", "flow", "--data-dir", "D", "--url", "U", "--profile", "P", "--config", "C"],
    ["--url", "U", "--profile", "P", "--config", "C", "--data-dir", "D", "logs", "x"],
])
def test_global_options_before_or_after_the_command(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.data_dir == "D"
    if "--url" in argv:
        assert (args.url, args.profile, args.config) == ("U", "P", "C")
    if args.command == "serve":
        assert args.port == 0


def test_a_later_option_wins_and_an_absent_one_erases_nothing() -> None:
    args = build_parser().parse_args(["--data-dir", "A", "flow", "list", "--data-dir", "B"])
    assert args.data_dir == "B"
    args = build_parser().parse_args(["--url", "U", "flow", "list", "--namespace", "n"])
    assert args.url == "U" and args.profile is None and args.json is False


@pytest.mark.parametrize("argv", [["--json", "executions", "list"],
                                  ["executions", "list", "--json"],
                                  ["executions", "--data-dir", "D", "show", "x", "--json"]])
def test_json_before_or_after(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).json is True


def test_json_where_it_does_not_apply_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "logs", "x"]) == 2
    assert capsys.readouterr().err == "flowdeck: --json does not apply to `logs`\n"
    assert main(["--json", "flow", "delete", "ns", "f"]) == 2
    assert capsys.readouterr().err == "flowdeck: --json does not apply to `flow delete`\n"


def groups(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(commands.choices)


def test_every_group_help_lists_its_actions(capsys: pytest.CaptureFixture[str]) -> None:
    with_actions = 0
    for name, parser in groups(build_parser()).items():
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        with pytest.raises(SystemExit) as done:
            main([name, "--help"])
        assert done.value.code == 0
        shown = capsys.readouterr().out
        for sub in subs:
            with_actions += 1
            assert "\nactions:\n" in shown, name
            for choice in sub._choices_actions:
                assert re.search(rf"^    {choice.dest}\s+\S", shown, re.M), (name, choice.dest)
                assert choice.help, (name, choice.dest)
    assert with_actions >= 5  # flow, executions, approvals, staging, token


def test_the_readme_lines_work_as_written(tmp_path: Path) -> None:
    env = clean_env(tmp_path / "home")
    data_dir = tmp_path / "data"
    serve = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.cli", "serve", "--data-dir", str(data_dir), "--port",
         "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8",
        env=env)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert URL_LINE.match(first.rstrip("\n")), (first, serve.stderr)
        assert (data_dir / "flowdeck.db").exists()
        listed = subprocess.run(
            [sys.executable, "-m", "flowdeck.cli", "executions", "list", "--data-dir",
             str(data_dir)], capture_output=True, text=True, env=env, timeout=30)
        assert listed.returncode == 0, listed.stderr  # beside the server, read-only
        assert listed.stdout.split() == ["ID", "STATE", "FLOW", "STARTED", "DURATION", "TASKS"]
    finally:
        serve.terminate()
        serve.communicate(timeout=20)
    assert serve.returncode == 0
