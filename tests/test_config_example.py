"""config.example.toml documents real keys: it loads, and its values are the defaults."""

from __future__ import annotations

from pathlib import Path

from flowdeck.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_example_config_loads_and_matches_defaults() -> None:
    settings = load_settings(str(EXAMPLE))
    defaults = Settings()
    assert settings.engine == defaults.engine
    assert settings.engine.max_concurrent_executions == 5
    assert settings.forge == defaults.forge
