"""The ``propensity`` command runs its work in a child process, so a native crash becomes one line.

A crash below Python (a segmentation fault in LightGBM, Numba code or another
extension) kills the process at once: no exception, no message, exit code 139.
The console entry point therefore starts the real command as a child process
(``python -m propensity.cli ...``, same arguments, same terminal) and waits. The
child writes every progress step to a crash log and has :mod:`faulthandler` dump
its Python stack there on a fatal signal (:mod:`propensity.cli.crashlog`). When the child ends normally its exit
code is passed on and the log deleted; when a signal killed it, the parent prints

    error: propensity train crashed (SIGSEGV, a fault in native code) while 'tuning LightGBM ...';
    the Python stack is in /tmp/propensity-crash-1234.log

and exits with ``128 + signal`` as a shell would. The child runs in a process group
of its own, so that the worker processes it started (the parameter search's) go
with it instead of living on, orphaned, with the terminal's output still open;
Ctrl-C and SIGTERM are passed on to that group. ``main(argv)`` called from Python
(tests, notebooks) runs in process, without this.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from propensity.cli.crashlog import CRASH_LOG_ENV, STEP_PREFIX
from propensity.cli.printing import error

__all__ = ["crash_message", "run_supervised"]


def run_supervised(argv: list[str], child: list[str] | None = None) -> int:
    """Run ``child`` (default: this command in a fresh interpreter) and report a crash in one line.

    Returns the child's exit code, or ``128 + signal`` when a signal ended it.
    """
    command = "propensity " + (argv[0] if argv and not argv[0].startswith("-") else "")
    command = command.strip()
    fd, log_path = tempfile.mkstemp(prefix="propensity-crash-", suffix=".log")
    os.close(fd)
    env = {**os.environ, CRASH_LOG_ENV: log_path}
    child = child or [sys.executable, "-m", "propensity.cli", *argv]
    proc = subprocess.Popen(child, env=env, process_group=0)
    forward = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda signum, _frame: _signal_group(proc.pid, signum))
    try:
        while True:
            try:
                code = proc.wait()
                break
            except KeyboardInterrupt:  # the child's group is not the terminal's: pass Ctrl-C on; it says what it did
                _signal_group(proc.pid, signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, forward)
        _signal_group(proc.pid, signal.SIGKILL)  # whatever the child left running (workers of a crashed search)
    if code >= 0 or -code in (signal.SIGINT, signal.SIGTERM):
        Path(log_path).unlink(missing_ok=True)
        return 128 - code if code < 0 else code
    error(crash_message(command, -code, Path(log_path)))
    return 128 - code


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # already gone, or not ours any more
        os.killpg(pgid, signum)


def crash_message(command: str, signum: int, log_path: Path) -> str:
    """One line: which command crashed, how, during which step, and where the stack is."""
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    what = {"SIGSEGV": "a fault in native code", "SIGBUS": "a fault in native code",
            "SIGABRT": "native code aborted", "SIGKILL": "killed, often for lack of memory",
            "SIGILL": "an illegal instruction in native code", "SIGFPE": "an arithmetic fault in native code"}
    last = ""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        last = next((ln[len(STEP_PREFIX):] for ln in reversed(lines) if ln.startswith(STEP_PREFIX)), "")
        has_stack = any(ln.startswith("Fatal Python error") for ln in lines)
    except OSError:
        has_stack = False
    during = f" while {last!r}" if last else ""
    where = (f"the Python stack is in {log_path}" if has_stack
             else f"no stack was written; the steps are in {log_path}")
    return (f"{command} crashed ({name}, {what.get(name, 'ended by a signal')}){during}; {where}; "
            "please report it with that file")
