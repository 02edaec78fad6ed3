"""Themes: TOML files registered as Textual themes; domain colours are theme variables.

The bundled themes (flowdeck-dark, flowdeck-light) ship inside the package
(`flowdeck/tui/themes/*.toml`, read through importlib.resources, so an installed wheel has
them); the operator's own come from `<user config dir>/themes/*.toml` (the top-level `themes/`
folder of the source tree has an example). A file holds Textual's theme fields (`name`,
`dark`, `primary`, ...) and may add a `[variables]` table. Every state colour the deck uses is a
variable named `state-<state>` (e.g. `state-failed`); a theme that does not set one gets it
from its own base colours (failed -> error, running -> primary, ...), so there is no colour
literal anywhere in the deck's code.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import platformdirs
from rich.style import Style as RichStyle
from textual.app import App
from textual.color import Color
from textual.theme import Theme

DEFAULT_THEME = "flowdeck-dark"
#: `:theme light` and `:theme dark` name the bundled themes.
SHORT_PREFIX = "flowdeck-"

_FIELDS = ("primary", "secondary", "warning", "error", "success", "accent", "foreground",
           "background", "surface", "panel", "boost")

#: state -> the base theme field it falls back to when a theme does not set `state-<state>`.
STATE_BASE: dict[str, str] = {
    "SUCCESS": "success", "WARNING": "warning", "FAILED": "error", "KILLED": "error",
    "KILLING": "warning", "CANCELLED": "secondary", "RUNNING": "primary",
    "RETRYING": "warning", "RESTARTED": "primary", "PAUSED": "accent", "QUEUED": "secondary",
    "CREATED": "secondary", "SUBMITTED": "secondary", "SKIPPED": "secondary",
    "RETRIED": "secondary", "BREAKPOINT": "accent", "RESUBMITTED": "primary",
}
LEVEL_BASE: dict[str, str] = {"ERROR": "error", "WARN": "warning", "INFO": "foreground",
                              "DEBUG": "secondary", "TRACE": "secondary"}
#: other domain variables: name -> base field
EXTRA_BASE: dict[str, str] = {"badge-approvals": "accent", "mark": "accent",
                              "match": "warning", "stale": "secondary"}


class ThemeFileError(ValueError):
    """A theme file that cannot be used (named in the message)."""


@dataclass(slots=True)
class LoadedTheme:
    theme: Theme
    path: Path


def _check_colour(path: Path | Traversable, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ThemeFileError(f"{path}: {key}: must be a colour string")
    try:
        Color.parse(value)
    except Exception:
        raise ThemeFileError(f"{path}: {key}: {value!r} is not a colour") from None
    return value


def theme_from_file(path: Path | Traversable) -> Theme:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ThemeFileError(f"{path}: {exc}") from None
    name = data.get("name") or path.name.removesuffix(".toml")
    if not isinstance(name, str):
        raise ThemeFileError(f"{path}: name: must be a string")
    if "primary" not in data:
        raise ThemeFileError(f"{path}: primary: required")
    fields = {k: _check_colour(path, k, data[k]) for k in _FIELDS if k in data}
    variables_in = data.get("variables") or {}
    if not isinstance(variables_in, dict):
        raise ThemeFileError(f"{path}: variables: must be a table")
    variables = {str(k): _check_colour(path, f"variables.{k}", v)
                 for k, v in variables_in.items()}
    dark = bool(data.get("dark", True))
    colours: dict[str, Any] = dict(fields)  # only colour names from _FIELDS, all strings
    return Theme(name=name, dark=dark, variables=with_domain_variables(fields, variables),
                 **colours)


def with_domain_variables(fields: dict[str, str], variables: dict[str, str]) -> dict[str, str]:
    """Fill every `state-*`, `level-*` and other deck variable the theme does not set."""
    out = dict(variables)

    def base(name: str) -> str | None:
        return fields.get(name) or fields.get("primary")

    for state, field in STATE_BASE.items():
        key = f"state-{state.lower()}"
        if key not in out and (value := base(field)):
            out[key] = value
    for level, field in LEVEL_BASE.items():
        key = f"level-{level.lower()}"
        if key not in out and (value := base(field)):
            out[key] = value
    for key, field in EXTRA_BASE.items():
        if key not in out and (value := base(field)):
            out[key] = value
    return out


def bundled_theme_files() -> list[Traversable]:
    """The theme files inside the package (present in a source tree and an installed wheel)."""
    folder = resources.files("flowdeck.tui") / "themes"
    return sorted((f for f in folder.iterdir() if f.name.endswith(".toml")),
                  key=lambda f: f.name)


def user_theme_dirs() -> list[Path]:
    return [Path(platformdirs.user_config_dir("flowdeck")) / "themes"]


def load_themes(dirs: list[Path] | None = None) -> tuple[list[Theme], list[str]]:
    """The bundled themes, then every theme in `dirs` (default: the user's themes folder),
    later ones overriding earlier ones by name; and the problems found."""
    found: dict[str, Theme] = {}
    problems: list[str] = []

    def add(files: Iterable[Path | Traversable]) -> None:
        for path in files:
            try:
                theme = theme_from_file(path)
            except ThemeFileError as exc:
                problems.append(str(exc))
                continue
            found[theme.name] = theme

    add(bundled_theme_files())
    for folder in dirs if dirs is not None else user_theme_dirs():
        if folder.is_dir():
            add(sorted(folder.glob("*.toml")))
    return list(found.values()), problems


def resolve_theme(name: str, available: Iterable[str]) -> str | None:
    """A theme's full name, or a bundled theme's short one (`light` -> `flowdeck-light`)."""
    names = set(available)
    wanted = name.strip()
    for candidate in (wanted, SHORT_PREFIX + wanted, wanted.lower(),
                      SHORT_PREFIX + wanted.lower()):
        if candidate in names:
            return candidate
    return None


def register_themes(app: App[Any], dirs: list[Path] | None = None) -> list[str]:
    """Register the theme files; Textual's built-in themes get the deck variables too."""
    for name, builtin in list(app.available_themes.items()):
        fields = {k: v for k in _FIELDS if isinstance(v := getattr(builtin, k), str)}
        app.register_theme(Theme(
            name=name, dark=builtin.dark, ansi=builtin.ansi,
            luminosity_spread=builtin.luminosity_spread, text_alpha=builtin.text_alpha,
            variables=with_domain_variables(fields, dict(builtin.variables)), **fields))
    themes, problems = load_themes(dirs)
    for theme in themes:
        app.register_theme(theme)
    return problems


def rich_style(app: App[Any], variable: str, *, bold: bool = False,
               reverse: bool = False, dim: bool = False) -> RichStyle:
    """A Rich style whose colour is the theme variable `variable` (or no colour)."""
    value = app.theme_variables.get(variable)
    color = None
    if value:
        try:
            color = Color.parse(value).rich_color
        except Exception:
            color = None
    return RichStyle(color=color, bold=bold or None, reverse=reverse or None, dim=dim or None)


def state_variable(state: str) -> str:
    return f"state-{state.lower()}" if state in STATE_BASE else "foreground"
