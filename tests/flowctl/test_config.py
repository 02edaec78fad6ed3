"""`[flowctl]` in the configuration: typed, checked with messages naming the key, and
mapped onto what the engine reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.config import ConfigError, FlowctlConfig, Settings, load_settings
from flowdeck.engine.flowctl.settings import FlowctlSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_the_example_documents_the_defaults() -> None:
    assert load_settings(str(EXAMPLE)).flowctl == Settings().flowctl


def test_a_full_section_reaches_the_engine(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "s3cret")
    config = tmp_path / "config.toml"
    config.write_text('''
[flowctl.etl]
locations = { "s3://bucket" = "file:///srv/bucket", "postgres://db" = "sqlite:///srv/db.sqlite" }
max_rows = 10

[flowctl.task_types.ml_training]
command = "python3 train.py"
environment = { MODEL_DIR = "/models" }

[[flowctl.webhooks]]
url = "https://example.com/hook"
events = ["workflow.failed"]
secret_env = "HOOK_SECRET"

[[flowctl.webhooks]]
url = "https://example.com/all"
''')
    settings = load_settings(str(config))
    engine = FlowctlSettings.from_extra(settings.flowctl.engine_extra())
    assert engine.etl.locations[0] == ("postgres://db", "sqlite:///srv/db.sqlite")
    assert engine.etl.max_rows == 10 and engine.etl.max_bytes == 32 * 1024 * 1024
    assert engine.task_types["ml_training"].environment == {"MODEL_DIR": "/models"}
    first, second = engine.webhooks
    assert (first.secret, first.events) == ("s3cret", frozenset({"workflow.failed"}))
    assert second.secret is None and len(second.events) == 9


@pytest.mark.parametrize(("toml", "problem"), [
    ('[flowctl.etl]\nlocations = { "bucket" = "file:///x" }', "flowctl.etl.locations"),
    ('[flowctl.etl]\nlocations = { "s3://b" = "ftp://x" }', "file:///, sqlite:///"),
    ("[flowctl.etl]\nmax_rows = 0", "flowctl.etl.max_rows"),
    ('[flowctl.task_types.etl]\ncommand = "x"', "only ml_training runs a configured command"),
    ('[[flowctl.webhooks]]\nurl = "ftp://x"', "flowctl.webhooks.0.url"),
    ('[[flowctl.webhooks]]\nurl = "https://x"\nevents = ["workflow.done"]', "workflow.done"),
    ('[flowctl]\ncolour = "red"', "flowctl.colour: unknown key"),
    ("[flowctl]\nrate_limit_per_minute = 0", "flowctl.rate_limit_per_minute"),
])
def test_bad_values_name_the_key(tmp_path: Path, toml: str, problem: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(toml + "\n")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    assert problem in str(caught.value) and str(config) in str(caught.value)


def test_an_unset_secret_variable_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_SECRET", raising=False)
    config = FlowctlConfig.model_validate(
        {"webhooks": [{"url": "https://x", "secret_env": "NO_SUCH_SECRET"}]})
    with pytest.raises(ValueError, match=r"webhooks\[0\]\.secret_env: .*NO_SUCH_SECRET"):
        config.engine_extra()


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    monkeypatch.setenv("FLOWDECK_FLOWCTL__ETL__MAX_ROWS", "42")
    assert load_settings(None).flowctl.etl.max_rows == 42


def test_the_rate_limit_reaches_the_server(monkeypatch: pytest.MonkeyPatch) -> None:
    from flowdeck.cli.commands.serve import server_extra

    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    assert server_extra(load_settings(None)) == {"flowctl_rate_limit": 100}
    monkeypatch.setenv("FLOWDECK_FLOWCTL__RATE_LIMIT_PER_MINUTE", "600")
    assert server_extra(load_settings(None)) == {"flowctl_rate_limit": 600}

