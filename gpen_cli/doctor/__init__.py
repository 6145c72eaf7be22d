"""`gpen doctor`: checks that find what is wrong with an install.

Every check imports what it exercises inside itself, never at module level, so the doctor
still runs, and says what to fix, when numpy 2 or a missing package breaks the rest.
"""

from gpen_cli.doctor.checks import CHECKS, Check, run_check, summary_line
from gpen_cli.doctor.packages import check_numpy_version
from gpen_cli.doctor.result import FAIL, PASS, WARN, CheckResult, DoctorContext

__all__ = [
    "CHECKS",
    "FAIL",
    "PASS",
    "WARN",
    "Check",
    "CheckResult",
    "DoctorContext",
    "check_numpy_version",
    "run_check",
    "summary_line",
]
