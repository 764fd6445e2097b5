"""Where accelgen writes: output directories are checked before anything is written, locked
while a run uses them, and files are replaced atomically (a temporary file and a rename), so an
interrupted run leaves no half-written file and no new Verilog beside an old manifest.

Every flow that writes (emission, simulation builds, synthesis, board builds) goes through
these helpers; a bad ``-o`` is one :class:`ConfigError` line (``-o``, the value, what is
allowed) with nothing written.
"""

import contextlib
import fcntl
import os
import signal
import tempfile
from pathlib import Path

from .numerics import ConfigError

__all__ = ["ALLOWED_DIRECTORY", "check_directory", "check_file", "make_directory", "locked",
           "write_atomic", "write_pair", "remove_stale_temporaries"]

ALLOWED_DIRECTORY = "expected a directory, or a path where one can be created"


def _refuse(option, shown, why):
    return ConfigError(f"{option}: {shown!r} is not allowed; {why}")


def check_directory(option, out_dir):
    """Raise :class:`ConfigError` (naming ``option``) unless ``out_dir`` is a writable
    directory or can be created as one: the checks ``mkdir`` would fail, made without
    writing anything."""
    shown = str(out_dir)
    if not shown:
        raise _refuse(option, shown, "expected a directory (use . for the current one)")
    path = Path(out_dir)
    if any(len(part.encode()) > 255 for part in path.parts):
        raise _refuse(option, shown, f"the directory cannot be created (File name too long); "
                                     f"{ALLOWED_DIRECTORY}")
    if path.exists():
        if not path.is_dir():
            raise _refuse(option, shown, f"it exists and is not a directory "
                                         f"({ALLOWED_DIRECTORY})")
        if not os.access(path, os.W_OK | os.X_OK):
            raise _refuse(option, shown, "it is not writable; expected a writable directory")
        return
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise _refuse(option, shown, f"the directory cannot be created (Not a directory); "
                                     f"{ALLOWED_DIRECTORY}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise _refuse(option, shown, f"the directory cannot be created (Permission denied); "
                                     f"{ALLOWED_DIRECTORY}")


def check_file(option, path, what):
    """The resolved ``path`` of a file to write: a file name (not a directory, at most 200
    bytes, leaving room for a temporary name beside it) in an existing, writable directory;
    ``what`` names the kind of file in the message (e.g. ``"an .npz file"``). Raises
    :class:`ConfigError` naming ``option``; writes nothing."""
    shown, path = str(path), Path(path)
    if not shown or path.name in ("", ".", "..") or path.is_dir():
        raise _refuse(option, shown, f"expected the name of {what} to write")
    if not path.resolve().parent.is_dir():
        raise _refuse(option, shown, "its directory does not exist")
    if not os.access(path.resolve().parent, os.W_OK | os.X_OK) or (
            path.exists() and not os.access(path, os.W_OK)):
        raise _refuse(option, shown, "it is not writable")
    if len(path.name.encode()) > 200:
        raise ConfigError(f"{option}: a file name of {len(path.name.encode())} bytes is not "
                          f"allowed; expected at most 200")
    return path.resolve()


def make_directory(option, out_dir):
    """:func:`check_directory`, then create ``out_dir`` with its parents; returns it as a
    :class:`Path`. An OS refusal becomes :class:`ConfigError`."""
    check_directory(option, out_dir)
    path = Path(out_dir)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = f"the directory cannot be created ({err.strerror or err}); {ALLOWED_DIRECTORY}"
        raise _refuse(option, str(out_dir), why) from None
    return path


@contextlib.contextmanager
def locked(directory, progress=None, *, option="-o"):
    """Exclusive lock on ``directory`` (a ``.lock`` file in it) for the duration: another
    process using the same directory waits, and says so through ``progress``."""
    try:
        lock = open(Path(directory) / ".lock", "w")
    except OSError as err:
        raise _refuse(option, str(directory), f"cannot write in it ({err.strerror or err}); "
                                              f"expected a writable directory") from None
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if progress is not None:
                progress(f"waiting for another run in {directory} to finish...")
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _write_temporary(path, text):
    """``text`` in a new ``.<name>.<pid>.<random>.tmp`` beside ``path`` (the pid lets
    :func:`remove_stale_temporaries` tell a dead writer's leftovers from a live one's), with
    ordinary file permissions (mkstemp makes 0600). Returns its path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.",
                               suffix=".tmp")
    tmp = Path(tmp)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a
    rename, so an interrupted run never leaves a half-written file."""
    tmp = _write_temporary(path, text)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_pair(first, first_text, second, second_text):
    """Write two files that belong together (a Verilog file and its manifest) so that no
    interruption leaves a new one beside an old other: both go to temporary files first;
    then, with SIGINT/SIGTERM held back, the old ``second`` is removed, ``first`` renamed into
    place, then ``second``. A SIGKILL between the renames leaves ``first`` without
    ``second``, never a mismatched pair."""
    held = {signal.SIGINT, signal.SIGTERM}
    tmp_first = _write_temporary(first, first_text)
    try:
        tmp_second = _write_temporary(second, second_text)
    except BaseException:
        tmp_first.unlink(missing_ok=True)
        raise
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        Path(second).unlink(missing_ok=True)
        os.replace(tmp_first, first)
        os.replace(tmp_second, second)
    except BaseException:
        tmp_first.unlink(missing_ok=True)
        tmp_second.unlink(missing_ok=True)
        raise
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_temporaries(directory, names):
    """Delete ``.<name>.<pid>.*.tmp`` files in ``directory`` whose writer is gone (a killed
    run's leftovers); a live writer's are kept."""
    for name in names:
        for tmp in Path(directory).glob(f".{name}.*.tmp"):
            pid = tmp.name[len(name) + 2:].partition(".")[0]
            if pid.isdigit() and not _alive(int(pid)):
                tmp.unlink(missing_ok=True)
