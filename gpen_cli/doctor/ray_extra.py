"""The optional `ray` extra (`gpen batch --engine ray`), checked only where it is installed.

Ray Data imports pyarrow, and pyarrow 26 refuses numpy 1.x at import although pip installs
it beside numpy 1.26: the install then looks complete until the first Ray batch fails.
"""

from __future__ import annotations

import importlib.metadata

from gpen_cli.doctor.result import FAIL, PASS, CheckResult, DoctorContext, first_line

RAY_EXTRA = "ray extra"
RAY_FIX = "pip install 'gpen-cli[ray]' (ray 2.60.0 with pyarrow<26 beside numpy<2)"


def ray_extra(context: DoctorContext) -> CheckResult:
    """PASS when Ray is absent (it is optional) or when `import ray.data` works."""
    try:
        ray_version = importlib.metadata.version("ray")
    except importlib.metadata.PackageNotFoundError:
        return CheckResult(RAY_EXTRA, PASS, f"not installed (optional: {RAY_FIX.split(' (')[0]})")
    try:
        import ray.data  # noqa: F401  (imports pyarrow, which checks numpy)
    except Exception as exc:  # ImportError, or pyarrow's own refusal of numpy 1.x
        return CheckResult(
            RAY_EXTRA,
            FAIL,
            f"ray {ray_version}: `import ray.data` fails: {first_line(exc)}",
            RAY_FIX,
        )
    import pyarrow

    return CheckResult(
        RAY_EXTRA,
        PASS,
        f"ray {ray_version}, pyarrow {pyarrow.__version__}: Ray Data imports",
    )
