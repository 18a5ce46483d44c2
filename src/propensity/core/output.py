"""Outputs that never cost a user a file: what may be replaced, one run at a time, atomic swaps.

The rule every command follows for its output path (``--out``, ``--dir``):

- a folder output replaces what is there only when it is absent, empty, recognised as
  something this tool wrote (the caller's ``owned`` test: a bundle's ``bundle.json``,
  a report's :data:`MARKER`, ...), or ``force`` is given;
- a file output (a table) may replace an existing file, never a folder;
- some paths are never written, not even with ``force``: the working directory and its
  parents, the home folder and its parents, an input of the run, a folder that holds an
  input, and anything inside an input folder.

:func:`check_folder_output` and :func:`check_file_output` apply it before any work, and
check that the output's folder can be written. :func:`claim` holds a lock file beside
the output (``.NAME.lock``) while a run works on it, so a second run on the same output
is told so in one line instead of colliding, and removes staging that a killed run left
beside it. :func:`staged_folder` and :func:`staged_file` write beside the target under a
per-process name and rename into place only when complete: an interrupted run leaves
the previous output as it was.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from propensity.core.errors import OutputError

__all__ = ["LOCK_TIMEOUT_S", "MARKER", "OutputError", "check_file_output", "check_folder_output", "claim",
           "has_marker", "is_remote", "lock_path", "staged_file", "staged_folder", "write_marker"]

MARKER = "propensity-output.json"
LOCK_TIMEOUT_S = 2.0  # a second run on the same output fails fast rather than queueing behind a long training
FORCE_HINT = "choose another output path, or pass --force to replace it"

_STAGING = re.compile(r"(?:staging|old)-(\d+)-[0-9a-f]+")
_FIXED_STAGING = ("staging", "report-staging")  # the fixed names earlier versions used; never live under the lock


def _absolute(path: str | Path) -> Path:
    """``path`` made absolute and normalised (``.``, ``..``), without following links."""
    return Path(os.path.abspath(path))


def _never_written(out: Path, inputs: Iterable[str | Path | None]) -> str | None:
    """Why ``out`` is a path no command may write, or None."""
    real = out.resolve()
    cwd = Path.cwd().resolve()
    if real == cwd:
        return "is the working directory"
    if real in cwd.parents:
        return "is a parent of the working directory"
    try:
        home = Path.home().resolve()
    except (KeyError, RuntimeError):  # no HOME and no user entry: nothing to protect there
        home = None
    if home is not None and real == home:
        return "is your home folder"
    if home is not None and real in home.parents:
        return "is a parent of your home folder"
    for given in inputs:
        if given is None or not os.path.exists(given):
            continue
        src = Path(given).resolve()
        if real == src:
            return f"is the input {given}"
        if real in src.parents:
            return f"holds the input {given}"
        if src.is_dir() and src in real.parents:
            return f"is inside the input folder {given}"
    return None


def _check_writable(out: Path, given: str | Path) -> None:
    """Refuse an output whose nearest existing folder cannot be written (checked before any work)."""
    folder = out.parent
    while not os.path.lexists(folder):
        folder = folder.parent
    if not folder.is_dir():
        raise OutputError(f"{given}: cannot be created: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{given}: cannot be written: no permission to write in {folder}")


def check_folder_output(out: str | Path, owned: Callable[[Path], bool] | None = None,
                        inputs: Iterable[str | Path | None] = (), force: bool = False,
                        hint: str = FORCE_HINT) -> Path:
    """Refuse (:class:`OutputError`) a folder output that must not be replaced; returns it absolute.

    An existing ``out`` may be replaced when it is an empty folder, when ``owned(out)``
    says this tool wrote it, or with ``force``; the paths of :func:`_never_written` are
    refused whatever ``force`` says. ``hint`` ends the refusal (what the user can do).
    """
    path = _absolute(out)
    why = _never_written(path, inputs)
    if why:
        real = "" if str(path.resolve()) == str(out) else f" ({path.resolve()})"
        raise OutputError(f"{out}: {why}{real}; propensity never writes its output there, not even with --force: "
                          "choose another output path")
    if os.path.lexists(path) and not force:
        if path.is_dir():
            try:
                entries = sorted(p.name for p in path.iterdir())
            except OSError as exc:
                raise OutputError(f"{out}: cannot read the folder ({exc.strerror or exc})") from None
            if entries and not (owned is not None and owned(path)):
                shown = ", ".join(entries[:3]) + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")
                raise OutputError(f"{out}: folder is not empty and holds files propensity did not write "
                                  f"({shown}); {hint}")
        else:
            raise OutputError(f"{out}: exists and is not a folder propensity wrote; {hint}")
    _check_writable(path, out)
    return path


def check_file_output(out: str | Path, inputs: Iterable[str | Path | None] = (),
                      suffixes: tuple[str, ...] = (".csv", ".parquet")) -> Path:
    """Refuse (:class:`OutputError`) a table output that must not be written; returns it absolute.

    An existing file is replaced (re-running a job is normal use); a folder, an input,
    a path inside an input folder and the paths of :func:`_never_written` are refused.
    """
    path = _absolute(out)
    if suffixes and path.suffix not in suffixes:
        raise OutputError(f"{out}: unsupported output type; use {' or '.join(suffixes)}")
    why = _never_written(path, inputs)
    if why:
        raise OutputError(f"{out}: {why}; choose another output file")
    if path.is_dir():
        raise OutputError(f"{out}: is a folder; the output is a file ({' or '.join(suffixes)})")
    _check_writable(path, out)
    return path


def lock_path(out: str | Path) -> Path:
    """The lock file of an output: ``.NAME.lock`` in the output's folder."""
    path = _absolute(out)
    return path.parent / f".{path.name}.lock"


@contextmanager
def claim(out: str | Path, timeout: float = LOCK_TIMEOUT_S) -> Iterator[Path]:
    """Hold the output's lock for the block; first remove staging that killed runs left beside it.

    Creates the output's parent folders as needed. Another run holding the lock for
    ``timeout`` seconds ends this one with an :class:`OutputError` naming the lock.
    """
    from filelock import FileLock, Timeout

    path = _absolute(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the folder {path.parent} ({exc.strerror or exc})") from None
    lock_file = lock_path(path)
    lock = FileLock(str(lock_file), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise OutputError(f"another propensity run is writing {out} (lock {lock_file} held); wait for it "
                          "or choose another --out") from None
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the lock file {lock_file} ({exc.strerror or exc})") from None
    try:
        _remove_stale(path)
        yield path
    finally:
        lock.release()


def _alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # signal 0 is no probe on Windows: keep what cannot be checked
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, under another user
        return True
    return True


def _remove_stale(out: Path) -> None:
    """Remove staging beside ``out`` whose process is gone, with a warning (called under the output's lock)."""
    prefix = f".{out.name}."
    try:
        siblings = sorted(out.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        if not p.name.startswith(prefix):
            continue
        rest = p.name[len(prefix):]
        m = _STAGING.fullmatch(rest)
        if m is None and rest not in _FIXED_STAGING:
            continue
        if m is not None and _alive(int(m.group(1))):
            continue
        _remove(p)
        who = f" (process {m.group(1)})" if m is not None else ""
        warnings.warn(f"removed {p}, left behind by an interrupted propensity run{who}", stacklevel=4)


def _remove(p: Path) -> None:
    if p.is_symlink() or not p.is_dir():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def _staging(out: Path, kind: str) -> Path:
    return out.parent / f".{out.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}"


def _swap(new: Path, out: Path) -> None:
    """Rename ``new`` onto ``out``; what was at ``out`` is set aside first and removed only after."""
    old = None
    if os.path.lexists(out):
        old = _staging(out, "old")
        os.rename(out, old)
    try:
        os.rename(new, out)
    except BaseException:
        if old is not None:
            os.rename(old, out)
        raise
    if old is not None:
        _remove(old)


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """A new empty folder beside ``out`` to write into, renamed onto ``out`` when the block succeeds.

    When the block fails the folder is removed and ``out`` is untouched. The folder is
    made by a plain mkdir, so it and its files get the modes the umask gives.
    """
    path = _absolute(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _staging(path, "staging")
    tmp.mkdir()
    try:
        yield tmp
        _swap(tmp, path)
    except BaseException as exc:
        _remove(tmp)
        named = _naming_output(exc, tmp, out)
        if named is not exc:
            raise named from exc
        raise


@contextmanager
def staged_file(out: str | Path) -> Iterator[Path]:
    """An empty file beside ``out`` to write, renamed onto ``out`` when the block succeeds (removed if not)."""
    path = _absolute(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _staging(path, "staging")
    tmp.touch(exist_ok=False)  # 0o666 & ~umask, the mode of any new file
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        tmp.unlink(missing_ok=True)
        named = _naming_output(exc, tmp, out)
        if named is not exc:
            raise named from exc
        raise


def _naming_output(exc: BaseException, tmp: Path, out: str | Path) -> BaseException:
    """``exc`` as the user should read it: naming ``out``, never the hidden staging path ``tmp`` beside it.

    An ``OSError`` about ``tmp`` (or any error whose text holds it) becomes an
    :class:`OutputError` naming ``out``; any other error is returned as it is.
    """
    if not isinstance(exc, Exception):
        return exc
    staged = str(tmp)
    names = [str(n) for n in (getattr(exc, "filename", None), getattr(exc, "filename2", None)) if n is not None]
    if isinstance(exc, OSError) and any(n == staged or n.startswith(staged + os.sep) for n in names):
        return OutputError(f"{out}: cannot write the output ({exc.strerror or type(exc).__name__})")
    if staged in str(exc):
        return OutputError(f"{out}: cannot write the output ({str(exc).replace(staged, str(out))})")
    return exc


def write_marker(folder: str | Path, kind: str) -> Path:
    """Mark ``folder`` as written by propensity (``kind``: what it is), so a later run may replace it."""
    path = Path(folder) / MARKER
    path.write_text(json.dumps({"written_by": "propensity", "kind": kind, "marker_version": 1}) + "\n",
                    encoding="utf-8")
    return path


def has_marker(folder: str | Path, kind: str) -> bool:
    """Whether ``folder`` holds the marker :func:`write_marker` wrote for ``kind``."""
    try:
        meta = json.loads((Path(folder) / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("written_by") == "propensity" and meta.get("kind") == kind


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:/")


def is_remote(path: str | Path) -> bool:
    """Whether ``path`` is a URI of another file system (``s3://``, ``abfss://``, ``dbfs:/``, ``hdfs://``), not a
    local path (a Windows drive letter ``C:/`` is one letter, a scheme two or more)."""
    return bool(_SCHEME.match(str(path)))
