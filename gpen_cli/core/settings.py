"""The user's own places and defaults: the weights folder, and a config file of defaults.

A user with one set of weights should not type `--model GPEN-BFR-256 --detector
retinaface-mobile` on every command. The commands read defaults for the pipeline options
from a TOML file (`$GPEN_CONFIG`, else `config.toml` in the user config folder) and from
`GPEN_<KEY>` environment variables; a flag beats the environment, which beats the file,
which beats the built-in default. The keys are the long flags without their dashes, dashes
written as underscores (`--fidelity-weight` is `fidelity_weight`, `--compile` is `compile`).

Only the command line reads these defaults: `RestoreConfig()` and `FaceRestorer` keep the
built-in ones, so a program's output never depends on a file it did not name. The one
exception is where weights are looked for (`weights_dir`), which is a place, not a choice
that changes pixels: the library and the commands must find the same files.
"""

from __future__ import annotations

import os
import sys
import types
from dataclasses import dataclass, fields
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

import platformdirs

from gpen_cli.core.config import ConfigError, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.core.named_networks import NAMED_NETWORKS, check_network
from gpen_cli.core.names import match_name

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover  (the same parser, published as tomli before 3.11)
    import tomli as tomllib

APP_NAME = "gpen-cli"
CONFIG_ENV = "GPEN_CONFIG"
CONFIG_FILENAME = "config.toml"
ENV_PREFIX = "GPEN_"

# RestoreConfig fields whose key differs from the field name: the key is the flag's name.
_KEY_OF_FIELD = {"compile_model": "compile"}
FIELD_OF_KEY = {_KEY_OF_FIELD.get(f.name, f.name): f.name for f in fields(RestoreConfig)}
KEYS = tuple(FIELD_OF_KEY)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def key_of(setting: str) -> str:
    """The config-file key (and `GPEN_<KEY>` variable) of a `RestoreConfig` field."""
    return _KEY_OF_FIELD.get(setting, setting)


def env_name(key: str) -> str:
    return ENV_PREFIX + key.upper()


def user_weights_dir() -> Path:
    """The per-user data folder's weights folder (~/.local/share/gpen-cli/weights on Linux)."""
    return platformdirs.user_data_path(APP_NAME) / "weights"


def config_file() -> tuple[Path, str]:
    """The config file read for defaults, and what chose it ($GPEN_CONFIG or the default)."""
    named = os.environ.get(CONFIG_ENV, "").strip()
    if named:
        return Path(named).expanduser().absolute(), f"${CONFIG_ENV}"
    return platformdirs.user_config_path(APP_NAME) / CONFIG_FILENAME, "the user config folder"


@dataclass(frozen=True)
class Setting:
    """One default: its value (as `RestoreConfig` takes it) and where it came from."""

    key: str
    value: Any
    source: str  # "built-in", "$GPEN_MODEL" or the config file's path


def _base_type(setting: str) -> type:
    """The type a field holds, without its `| None`."""
    hint = get_type_hints(RestoreConfig)[setting]
    if isinstance(hint, types.UnionType):
        hint = next(arg for arg in hint.__args__ if arg is not type(None))
    return hint


def _converted(setting: str, value: Any, from_text: bool) -> Any:
    """`value` (a TOML value, or text from the environment) as the field's type; ValueError
    saying what was expected."""
    kind = _base_type(setting)
    if kind is bool:
        if from_text and str(value).strip().lower() in _TRUE + _FALSE:
            return str(value).strip().lower() in _TRUE
        if isinstance(value, bool):
            return value
        raise ValueError(f"must be true or false, got {value!r}")
    if kind in (int, float):
        if from_text:
            try:
                return kind(str(value).strip())
            except ValueError:
                pass
        elif isinstance(value, int | float) and not isinstance(value, bool):
            if kind is float or float(value).is_integer():
                return kind(value)
        noun = "a whole number" if kind is int else "a number"
        raise ValueError(f"must be {noun}, got {value!r}")
    if not isinstance(value, str):
        raise ValueError(f"must be text, got {value!r}")
    if kind is Path or setting in ("model", "bg_upsampler"):
        return str(Path(value).expanduser()) if value.startswith("~") else value
    return value  # a choice (an Enum) or text: RestoreConfig checks it, naming the choices


def _checked(setting: str, value: Any, where: str) -> Any:
    """`value` once `RestoreConfig` accepts it alone (and, for a model, once it is a file
    or a registry entry), else one line naming `where`."""
    try:
        checked = getattr(RestoreConfig(**{setting: value}), setting)
        if setting in NAMED_NETWORKS:
            check_network(setting, checked)
    except ConfigError as exc:
        raise GpenError(f"{where}: {exc.problem}") from None
    return checked.value if isinstance(checked, Enum) else checked


def read_file(path: Path) -> dict[str, Any]:
    """The settings in the config file at `path` ({} when it does not exist), checked: an
    unknown key or a bad value is one line naming the file, the key and the choices."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise GpenError(f"config file {path}: cannot be read ({exc})") from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GpenError(f"config file {path}: not valid TOML ({exc})") from None
    values: dict[str, Any] = {}
    for key, raw in document.items():
        try:
            key = match_name(key, KEYS, "key")  # noqa: PLW2901  (any case is the same key)
        except GpenError as exc:
            raise GpenError(f"config file {path}: {exc}") from None
        setting, where = FIELD_OF_KEY[key], f"config file {path}: {key}"
        try:
            value = _converted(setting, raw, from_text=False)
        except ValueError as exc:
            raise GpenError(f"{where}: {exc}") from None
        if setting == "weights_dir":
            values[setting] = (path.parent / value).absolute()  # relative to the file
        else:
            values[setting] = _checked(setting, value, where)
    return values


def file_settings() -> tuple[dict[str, Any], Path, str]:
    """The config file's settings, its path and what chose it. A file named by
    $GPEN_CONFIG must exist: a mistyped name is said, not silently ignored."""
    path, chosen_by = config_file()
    if chosen_by != "the user config folder" and not path.is_file():
        raise GpenError(f"${CONFIG_ENV} names {path}, which is not a file")
    return read_file(path), path, chosen_by


def env_value(setting: str) -> tuple[Any, str] | None:
    """The `GPEN_<KEY>` variable's value for `setting`, checked, and its name; None when unset."""
    name = env_name(key_of(setting))
    text = os.environ.get(name, "").strip()
    if not text:
        return None
    try:
        value = _converted(setting, text, from_text=True)
    except ValueError as exc:
        raise GpenError(f"${name}: {exc}") from None
    if setting == "weights_dir":
        return Path(value).expanduser().absolute(), f"${name}"
    return _checked(setting, value, f"${name}"), f"${name}"


def effective(settings: list[str] | None = None) -> dict[str, Setting]:
    """Each of `settings` (every field when None) with the value the commands use when no
    flag is given, and where it came from: environment, else file, else built-in."""
    from_file, path, _ = file_settings()
    defaults = RestoreConfig()
    chosen: dict[str, Setting] = {}
    for setting in settings or [f.name for f in fields(RestoreConfig)]:
        key = key_of(setting)
        from_env = env_value(setting)
        if from_env is not None:
            chosen[setting] = Setting(key, from_env[0], from_env[1])
        elif setting in from_file:
            chosen[setting] = Setting(key, from_file[setting], str(path))
        else:
            value = getattr(defaults, setting)
            chosen[setting] = Setting(key, value.value if isinstance(value, Enum) else value,
                                      "built-in")  # fmt: skip
    return chosen


def default_config() -> RestoreConfig:
    """What `gpen restore` runs with no pipeline flag: the defaults of the environment and
    the config file over the built-in ones (the weights folder left to `weights`)."""
    chosen = effective()
    chosen.pop("weights_dir")
    return RestoreConfig(**{setting: item.value for setting, item in chosen.items()})
