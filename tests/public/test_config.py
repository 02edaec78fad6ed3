"""`[public]` in the configuration: typed, documented in config.example.toml, handed to the
engine as `EngineSettings.extra["public"]`; a delivery token is never written inline."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.config import ConfigError, Settings, load_settings
from flowdeck.engine.public.settings import PublicSettings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def test_the_example_documents_the_defaults() -> None:
    settings = load_settings(str(EXAMPLE))
    assert settings.public == Settings().public
    extra = settings.public.engine_extra()
    assert extra == {"namespace": "agents", "delivery": {"timeout": 10.0}}
    engine_side = PublicSettings.from_extra(extra)
    assert engine_side.namespace == "agents" and engine_side.delivery.url is None


def test_a_delivery_endpoint_and_its_token_variable(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[public]\nnamespace = "bots"\n[public.delivery]\n'
                      'url = "https://gw.example.com/v1/messages"\ntoken_env = "GW_TOKEN"\n')
    monkeypatch.setenv("FLOWDECK_PUBLIC__DELIVERY__TIMEOUT", "3")
    extra = load_settings(str(config)).public.engine_extra()
    assert extra == {"namespace": "bots", "delivery": {
        "url": "https://gw.example.com/v1/messages", "token_env": "GW_TOKEN", "timeout": 3.0}}
    delivery = PublicSettings.from_extra(extra).delivery
    assert (delivery.url, delivery.token_env, delivery.timeout) == (
        "https://gw.example.com/v1/messages", "GW_TOKEN", 3.0)


@pytest.mark.parametrize(("text", "problem"), [
    ('[public.delivery]\ntoken = "hunter2"\n', "public.delivery: Value error, 'token' is not"),
    ('[public.delivery]\nurl = "ftp://x"\n', "public.delivery.url"),
    ('[public.delivery]\ntoken_env = "A B"\n', "public.delivery.token_env"),
    ('[public]\nnamespace = "no spaces"\n', "public.namespace"),
    ('[public]\nnamspace = "x"\n', "public.namspace: unknown key"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "config.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    assert problem in str(caught.value)
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("value", "allowed"), [("true", True), ("1", True), ("false", False)])
def test_private_webhook_targets_from_the_environment(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, allowed: bool) -> None:
    from flowdeck.cli.session import engine_settings
    from flowdeck.engine.outbox import OutboxSettings

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    monkeypatch.setenv("FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", value)
    settings = load_settings(None, data_dir=str(tmp_path / "data"))
    assert settings.webhooks.allow_private_targets is allowed
    extra = engine_settings(settings, scheduler=False).extra["webhooks"]
    assert OutboxSettings.from_extra(extra).allow_private_targets is allowed


def test_private_webhook_targets_default_off_and_bad_values_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "no-config"))
    monkeypatch.delenv("FLOWDECK_CONFIG", raising=False)
    assert load_settings(None).webhooks.allow_private_targets is False
    config = tmp_path / "config.toml"
    config.write_text("[webhooks]\nallow_private_targets = true\n")
    assert load_settings(str(config)).webhooks.allow_private_targets is True
    monkeypatch.setenv("FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS", "perhaps")
    with pytest.raises(ConfigError) as caught:
        load_settings(str(config))
    assert "FLOWDECK_WEBHOOKS__ALLOW_PRIVATE_TARGETS" in str(caught.value)
