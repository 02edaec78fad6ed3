"""config.example.toml documents real keys: it loads, and its values are the defaults."""

from __future__ import annotations

import re
from pathlib import Path

from flowdeck.config import Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.toml"


def test_example_config_loads_and_matches_defaults() -> None:
    settings = load_settings(str(EXAMPLE))
    defaults = Settings()
    assert settings.engine == defaults.engine
    assert settings.tasks == defaults.tasks
    assert settings.engine.max_concurrent_executions == 5
    assert settings.forge == defaults.forge


def test_tasks_settings_are_checked(tmp_path: Path) -> None:
    import pytest

    from flowdeck.config import ConfigError

    bad = tmp_path / "bad.toml"
    for line, problem in (('public_envs = ["REGION"]', "must be an ENV_* variable name"),
                          ('env_passthrough = ["A-B"]', "not the name of an environment"),
                          ('run_as = ""', "at least 1 character")):
        bad.write_text(f"[tasks]\n{line}\n")
        with pytest.raises(ConfigError, match=re.escape(problem)):
            load_settings(str(bad))
    good = tmp_path / "good.toml"
    good.write_text('[tasks]\npublic_envs = ["ENV_REGION", "ENV_PUBLIC_*"]\nrun_as = "nobody"\n')
    assert load_settings(str(good)).tasks.public_envs == ["ENV_REGION", "ENV_PUBLIC_*"]
