"""Build the right `Backend` from what the user asked for: a URL, a profile, or neither.

- a URL (`--url http://kestra:8080`) → `HttpBackend` (credentials from the arguments, else
  from the profile);
- else a profile (`[profiles.NAME]` in the config file, passed here as a dict):
  `kind = "remote"` (or just a `url`) → `HttpBackend`; `kind = "embedded"` → the engine
  in-process on `data_dir`;
- else the embedded engine on `data_dir` (default: the user data dir).

Profile keys: `kind` (`embedded` | `remote`), `url`, `username`, `password`, `token`, and for
the secrets, better than inline values, `username_env`, `password_env`, `token_env` (the name
of an environment variable) or `password_file`, `token_file` (a file holding only the secret);
`timeout` and `poll_interval` (seconds) for remote; `data_dir`, `max_concurrent_executions`
and `scheduler` for embedded (applied over `engine_settings` when both are given). A bad
profile is a `ValidationError` naming the key, under `key_prefix` (`profile.` by default; the
CLI passes `profiles.NAME.` so the message matches the config file).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import platformdirs

from flowdeck.client.backend import Backend
from flowdeck.client.embedded import EmbeddedBackend
from flowdeck.client.http import HttpBackend
from flowdeck.core.errors import ValidationError
from flowdeck.engine.engine import EngineSettings

PROFILE_KEYS = frozenset({
    "kind", "url", "username", "password", "token", "username_env", "password_env",
    "token_env", "password_file", "token_file", "timeout", "poll_interval", "data_dir",
    "max_concurrent_executions", "scheduler", "name", "read_only", "theme",
})
EMBEDDED_NAMES = ("embedded", "embedded:", "local")


def default_data_dir() -> Path:
    return Path(platformdirs.user_data_dir("flowdeck"))


def _secret(profile: Mapping[str, Any], key: str, environ: Mapping[str, str]) -> str | None:
    """`key` inline, from `<key>_env` (a variable's name) or from `<key>_file`."""
    env_name = profile.get(f"{key}_env")
    if env_name is not None:
        if not isinstance(env_name, str) or not env_name:
            raise ValidationError([(f"profile.{key}_env", "must name an environment variable")])
        value = environ.get(env_name)
        if value is None:
            raise ValidationError([(f"profile.{key}_env",
                                    f"environment variable {env_name} is not set")])
        return value
    file_name = profile.get(f"{key}_file")
    if file_name is not None:
        path = Path(str(file_name)).expanduser()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise ValidationError([(f"profile.{key}_file",
                                    f"cannot read {path}: {exc.strerror or exc}")]) from None
        except UnicodeDecodeError:
            raise ValidationError([(f"profile.{key}_file", f"{path} is not UTF-8 text")]) from None
    value = profile.get(key)
    if value is not None and not isinstance(value, str):
        raise ValidationError([(f"profile.{key}", "must be a string")])
    return value


def _number(profile: Mapping[str, Any], key: str) -> float | None:
    value = profile.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValidationError([(f"profile.{key}", "must be a positive number of seconds")])
    return float(value)


def make_backend(url: str | None = None, *, profile: Mapping[str, Any] | None = None,
                 data_dir: Path | None = None, username: str | None = None,
                 password: str | None = None, token: str | None = None,
                 timeout: float | None = None, engine_settings: EngineSettings | None = None,
                 environ: Mapping[str, str] | None = None,
                 key_prefix: str = "profile.") -> Backend:
    """The backend for a URL, a profile, or the embedded engine (see the module docstring).

    Nothing is opened here: call `await backend.connect()`.
    """
    choice = resolve_backend(url, profile=profile, data_dir=data_dir, username=username,
                             password=password, token=token, timeout=timeout,
                             engine_settings=engine_settings, environ=environ,
                             key_prefix=key_prefix)
    return choice if isinstance(choice, HttpBackend) else EmbeddedBackend(choice)


def resolve_backend(url: str | None = None, *, profile: Mapping[str, Any] | None = None,
                    data_dir: Path | None = None, username: str | None = None,
                    password: str | None = None, token: str | None = None,
                    timeout: float | None = None,
                    engine_settings: EngineSettings | None = None,
                    environ: Mapping[str, str] | None = None,
                    key_prefix: str = "profile.") -> HttpBackend | EngineSettings:
    """What `make_backend` would open: the `HttpBackend` of a server, or the settings of the
    embedded engine, for a caller that opens that engine its own way (read-only, or without
    starting it)."""
    try:
        return _resolve(url, profile=profile, data_dir=data_dir, username=username,
                        password=password, token=token, timeout=timeout,
                        engine_settings=engine_settings, environ=environ)
    except ValidationError as exc:
        if key_prefix == "profile.":
            raise
        problems = [(key_prefix + path.removeprefix("profile.") if path.startswith("profile.")
                     else path, msg) for path, msg in exc.problems]
        raise ValidationError(problems) from None


def _resolve(url: str | None, *, profile: Mapping[str, Any] | None,
             data_dir: Path | None, username: str | None, password: str | None,
             token: str | None, timeout: float | None,
             engine_settings: EngineSettings | None,
             environ: Mapping[str, str] | None) -> HttpBackend | EngineSettings:
    env = os.environ if environ is None else environ
    profile = dict(profile or {})
    unknown = sorted(set(profile) - PROFILE_KEYS)
    if unknown:
        raise ValidationError([(f"profile.{unknown[0]}", "unknown key; use one of "
                                + ", ".join(sorted(PROFILE_KEYS)))])
    kind = profile.get("kind")
    if kind is not None and kind not in ("embedded", "remote"):
        raise ValidationError([("profile.kind", f"must be 'embedded' or 'remote', not '{kind}'")])
    if url is not None and url.strip().lower() in EMBEDDED_NAMES:
        url, kind = None, "embedded"
    if url is None and kind != "embedded" and (kind == "remote" or profile.get("url")):
        url = profile.get("url")
        if not isinstance(url, str) or not url.strip():
            raise ValidationError([("profile.url", "a remote profile needs the server URL")])
    if url is not None:
        use_profile = kind != "embedded"
        if username is None and password is None and token is None and use_profile:
            username = _secret(profile, "username", env)
            password = _secret(profile, "password", env)
            token = _secret(profile, "token", env)
        options: dict[str, Any] = {}
        wait = timeout if timeout is not None else _number(profile, "timeout")
        if wait is not None:
            options["timeout"] = wait
        poll = _number(profile, "poll_interval")
        if poll is not None:
            options["poll_interval"] = poll
        return HttpBackend(url, username=username, password=password, token=token, **options)
    if engine_settings is not None:  # a copy: the caller's settings stay as they were
        settings = dataclasses.replace(engine_settings)
        if profile.get("data_dir"):
            settings.data_dir = Path(str(profile["data_dir"])).expanduser()
    else:
        chosen = profile.get("data_dir") or data_dir or default_data_dir()
        settings = EngineSettings(data_dir=Path(str(chosen)).expanduser())
    limit = profile.get("max_concurrent_executions")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValidationError([("profile.max_concurrent_executions",
                                    "must be a whole number of at least 1")])
        settings.max_concurrent_executions = limit
    scheduler = profile.get("scheduler")
    if scheduler is not None:
        if not isinstance(scheduler, bool):
            raise ValidationError([("profile.scheduler", "must be true or false")])
        settings.scheduler = scheduler
    return settings
