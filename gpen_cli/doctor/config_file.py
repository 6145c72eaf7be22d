"""The user's config file and GPEN_* variables: readable, and what they set."""

from __future__ import annotations

from gpen_cli.core.errors import GpenError
from gpen_cli.doctor.result import FAIL, PASS, CheckResult, DoctorContext

CONFIG_FILE = "config file"


def config_file(context: DoctorContext) -> CheckResult:
    """The defaults the commands read: a bad file or variable stops every command, so it
    is a failure here, with the line the commands would print."""
    from gpen_cli.core import settings

    try:
        from_file, path, _ = settings.file_settings()
        chosen = settings.effective()
    except GpenError as exc:
        return CheckResult(CONFIG_FILE, FAIL, str(exc), "correct it, then run: gpen config show")
    keys = ", ".join(settings.key_of(setting) for setting in from_file)
    detail = f"{path}: sets {keys}" if keys else f"{path}: absent, the built-in defaults apply"
    if path.is_file() and not keys:
        detail = f"{path}: sets nothing"
    variables = [item.source for item in chosen.values() if item.source.startswith("$")]
    if variables:
        detail += f"; from the environment: {', '.join(variables)}"
    return CheckResult(CONFIG_FILE, PASS, detail)
