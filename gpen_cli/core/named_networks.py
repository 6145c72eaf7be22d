"""The settings that name a network (a registry name or a checkpoint file) and the check
that each does: what the resolver asks of a configuration before it builds anything, and
what the settings reader asks of a value from the config file or the environment, so both
refuse the same values with the same words. It looks at the file system (is this a file),
never at a file's contents, and starts no download."""

from __future__ import annotations

from gpen_cli.core.config import ConfigError, RestoreConfig
from gpen_cli.core.errors import GpenError
from gpen_cli.weights.registry import ModelKind, check_file_or_name

NAMED_NETWORKS: dict[str, ModelKind] = {"model": "gpen", "bg_upsampler": "upsampler"}


def check_network(setting: str, value: str | None) -> None:
    """ConfigError naming `setting` unless `value` is a checkpoint file or a registry entry
    of the setting's kind (None, and "none" for the upsampler, pass)."""
    if value is None or (setting == "bg_upsampler" and value.lower() == "none"):
        return
    try:
        check_file_or_name(value, NAMED_NETWORKS[setting])
    except GpenError as exc:
        raise ConfigError(setting, str(exc)) from None


def check_networks(config: RestoreConfig) -> None:
    """`check_network` for each setting of `config` that names a network."""
    for setting in NAMED_NETWORKS:
        check_network(setting, getattr(config, setting))
