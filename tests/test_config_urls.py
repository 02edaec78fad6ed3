"""Every setting that names an http(s) URL is checked the same way, naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.config import ConfigError, load_settings


@pytest.mark.parametrize(("section", "key"), [
    ("[[flowctl.webhooks]]\nurl = ", "flowctl.webhooks.0.url"),
    ("[[forge.webhooks]]\nurl = ", "forge.webhooks.0.url"),
    ("[staging.railway]\nendpoint = ", "staging.railway.endpoint"),
    ("[profiles.far.forge]\nurl = ", "profiles.far.forge.url"),
])
def test_a_url_setting_must_be_http(tmp_path: Path, section: str, key: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'{section}"ftp://example.com/x"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    assert key in str(caught.value) and "must be an http:// or https:// URL" in str(caught.value)
