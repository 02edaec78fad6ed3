"""How task processes run: a clean environment, the ENV_* values flows may read, and the user.

A flow's author is an operator, not an administrator. So a shell task does not inherit the
engine's environment (which holds `FLOWDECK_*` settings, `ENV_STAGING_*_KEY` webhook keys and
whatever else the service was started with): it gets the basics (`PATH`, `HOME`, locale, time
zone), the names configured in `[tasks] env_passthrough`, and its own `env`. `{{ envs }}`
shows only the `ENV_*` variables `[tasks] public_envs` names. With `[tasks] run_as` set,
task processes run as that user, who cannot write (or read) the database; running as root
without it is allowed but reported loudly.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from flowdeck.core.errors import FlowdeckError

log = logging.getLogger("flowdeck.engine")

#: What every task process gets from the engine's own environment, when set.
BASE_ENV = ("PATH", "LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TMPDIR",
            "HOME", "USER", "LOGNAME", "SHELL", "TERM")
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PUBLIC_NAME = re.compile(r"ENV_[A-Za-z0-9_]*\*?")
ROOT_WARNING = ("flowdeck runs as root and [tasks] run_as is not set: shell tasks run as root "
                "and can read and write the database, the configuration and every file here; "
                "set [tasks] run_as to an unprivileged user")


@dataclass(slots=True)
class TaskSettings:
    """`[tasks]` of the configuration, as the engine takes it."""

    #: Variables of the engine's environment handed to task processes as they are.
    env_passthrough: tuple[str, ...] = ()
    #: `ENV_*` variables flows may read as `{{ envs.name }}`; `ENV_PUBLIC_*` ends in a `*`.
    public_envs: tuple[str, ...] = ()
    #: The user task processes run as (flowdeck must run as root, or as that user).
    run_as: str | None = None

    def check(self) -> None:
        """ValueError naming the first entry that cannot be used."""
        for name in self.env_passthrough:
            if not _ENV_NAME.fullmatch(name):
                raise ValueError(f"env_passthrough: {name!r} is not the name of an "
                                 "environment variable")
        for name in self.public_envs:
            if not _PUBLIC_NAME.fullmatch(name):
                raise ValueError(f"public_envs: {name!r} must be an ENV_* variable name "
                                 "(a trailing * matches a prefix: ENV_PUBLIC_*)")


@dataclass(frozen=True, slots=True)
class TaskUser:
    name: str
    uid: int
    gid: int
    home: str


class TaskIsolation:
    """The environment and user of task processes, from `TaskSettings`."""

    def __init__(self, settings: TaskSettings, environ: Mapping[str, str]) -> None:
        self.settings = settings
        self._environ = dict(environ)
        self.user: TaskUser | None = None

    def open(self) -> list[str]:
        """Check the settings and the user; returns the warnings to report. Raises
        FlowdeckError for settings that cannot be honoured."""
        try:
            self.settings.check()
        except ValueError as exc:
            raise FlowdeckError(f"[tasks] {exc}") from None
        warnings: list[str] = []
        name = self.settings.run_as
        if name is not None:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                raise FlowdeckError(f"[tasks] run_as: there is no user {name!r} on this "
                                    "machine") from None
            if os.geteuid() not in (0, entry.pw_uid):
                raise FlowdeckError(f"[tasks] run_as: flowdeck must run as root (or as "
                                    f"{name!r}) to start tasks as {name!r}")
            self.user = TaskUser(name, entry.pw_uid, entry.pw_gid, entry.pw_dir)
        elif os.geteuid() == 0:
            warnings.append(ROOT_WARNING)
        return warnings

    def public(self, envs: Mapping[str, str]) -> dict[str, str]:
        """The `{{ envs }}` flows see: `envs` maps `foo_bar` for `ENV_FOO_BAR`."""
        exact = {n.upper() for n in self.settings.public_envs if not n.endswith("*")}
        prefixes = tuple(n[:-1].upper() for n in self.settings.public_envs if n.endswith("*"))
        out = {}
        for key, value in envs.items():
            name = "ENV_" + key.upper()
            if name in exact or (prefixes and name.startswith(prefixes)):
                out[key] = value
        return out

    def base_env(self) -> dict[str, str]:
        """The environment every task process starts from."""
        env = {k: self._environ[k] for k in BASE_ENV if k in self._environ}
        env.setdefault("PATH", DEFAULT_PATH)
        for name in self.settings.env_passthrough:
            if name in self._environ:
                env[name] = self._environ[name]
        user = self.user
        if user is not None:
            env.update(HOME=user.home, USER=user.name, LOGNAME=user.name)
        return env

    def hand_over(self, workdir: Path) -> None:
        """Give a task's working directory (and what was put in it) to the task's user."""
        user = self.user
        if user is None or user.uid == os.geteuid():
            return
        for root, dirs, files in os.walk(workdir):
            os.chown(root, user.uid, user.gid)
            for name in (*dirs, *files):
                os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)

    def spawn_options(self) -> dict[str, object]:
        """`subprocess.Popen` arguments that start a process as the task's user."""
        user = self.user
        if user is None or user.uid == os.geteuid():
            return {}
        return {"user": user.uid, "group": user.gid, "extra_groups": []}
