"""Result files that are never lost, clobbered or left half-written.

- :func:`claim` holds an output path for one writer: an ``flock`` on a hidden lock file beside
  it (``.NAME.lock``). The system releases an ``flock`` when its process dies, SIGKILL included,
  so a killed writer never blocks the next one; a second live writer is refused at once with
  the first one's process id. A claim refuses an existing output unless ``overwrite``, and
  removes the temporary files (or folders) that killed writers left (``.NAME.*.tmp``: while the
  claim is held no live writer owns them).
- :func:`atomic_write` writes through a temporary file beside the output and renames it into
  place (``os.replace``), under a claim: a reader sees the old file or the new one, never half
  of one, and the temporary file is removed on every exit path that Python sees (exceptions,
  Ctrl-C, SIGTERM under the CLI); one left by SIGKILL is swept by the next claim.
- Files are created with the user's umask (``mkstemp`` alone would make them private, 0600).

A claim is re-entrant within a process: the CLI claims its output before the run (so a busy or
existing output is refused before any work) and the save inside claims it again.

Why by hand: the standard library has the pieces (``fcntl.flock``, ``tempfile``, ``os.replace``)
and no library in our dependencies combines them (``filelock`` would be a new dependency for one
function, and it leaves stale ``.tmp`` files to the caller).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from .errors import OutputError, OutputExists

try:
    import fcntl
except ImportError:  # pragma: no cover (Windows: claims are not exclusive there)
    fcntl = None  # type: ignore[assignment]

_held: dict[Path, int] = {}
"""The outputs this process has claimed, and how many times (claims nest)."""


def umask() -> int:
    """The process's file-creation mask: from /proc on Linux, else by setting and restoring it
    (which other threads could observe for an instant)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as fh:
            return int(next(line for line in fh if line.startswith("Umask:")).split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def lock_path(path: Path) -> Path:
    """The hidden lock file of an output (``.NAME.lock`` beside it)."""
    return path.with_name(f".{path.name}.lock")


def temporaries(path: Path) -> list[Path]:
    """Temporary files of writes to ``path`` (``.NAME.*.tmp`` beside it)."""
    return [Path(p) for p in glob.glob(str(path.with_name(f".{glob.escape(path.name)}.*.tmp")))]


def writable_place(path: Path, folder: bool = False) -> Path:
    """``path`` made absolute, its folder created; an :class:`OutputError` naming the path when
    a file output is a folder (or a ``folder`` output a file) or its place is not writable."""
    path = Path(path).expanduser().absolute()
    if path.is_dir() and not folder:
        raise OutputError(f"output {path} is a directory; give a file name")
    if folder and path.exists() and not path.is_dir():
        raise OutputError(f"output {path} is a file; give the path of a folder (a store)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError as err:
        raise OutputError(f"cannot create the folder of output {path}: {err.filename} is a file") from err
    except OSError as err:
        raise OutputError(f"cannot create the folder of output {path}: {err.strerror}") from err
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write output {path}: its folder is not writable")
    return path


def _lock(path: Path) -> int:
    """An exclusive ``flock`` on ``path``'s lock file, as an open descriptor."""
    lock = lock_path(path)
    for _ in range(10):  # the lock file may be replaced between open and flock: take the current one
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
        except OSError as err:
            raise OutputError(f"cannot write output {path}: {err.strerror} ({lock})") from err
        if fcntl is None:
            return fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise OutputError(f"output {path} is being written by another process (pid {holder}); wait for "
                              "it to finish or choose another output") from None
        try:
            current = os.stat(lock).st_ino
        except FileNotFoundError:
            current = -1
        if current == os.fstat(fd).st_ino:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            return fd
        os.close(fd)
    raise OutputError(f"cannot lock output {path}: its lock file {lock} keeps changing")


@contextlib.contextmanager
def claim(path: str | os.PathLike[str], *, overwrite: bool = True, folder: bool = False) -> Iterator[Path]:
    """Hold ``path`` as this process's output (see the module docstring); yields it absolute.

    ``overwrite=False`` refuses an existing output (:class:`OutputError`); ``folder``: the output
    is a folder (a Zarr store). Raises :class:`OutputError` when another process holds the
    output or its place is not writable.
    """
    path = writable_place(Path(path), folder)
    if not overwrite and path.exists():
        raise OutputExists(f"output {path} exists; pass --overwrite (overwrite=True) to replace it, or choose "
                          "another output")
    if path in _held:
        _held[path] += 1
        try:
            yield path
        finally:
            _held[path] -= 1
        return
    fd = _lock(path)
    _held[path] = 1
    try:
        for stale in temporaries(path):  # left by killed writers: no live writer owns them now
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)  # (a store being laid out)
            else:
                stale.unlink(missing_ok=True)
        yield path
    finally:
        del _held[path]
        with contextlib.suppress(FileNotFoundError):
            lock_path(path).unlink()
        os.close(fd)


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], *, overwrite: bool = True) -> Path:
    """Write ``path`` by ``write(temporary)`` then a rename, under a :func:`claim`; the file
    gets the user's umask. Returns the absolute path."""
    with claim(path, overwrite=overwrite) as target:
        try:
            fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        except OSError as err:
            raise OutputError(f"cannot write output {target}: {err.strerror}") from err
        os.close(fd)
        temporary = Path(name)
        try:
            write(temporary)
            os.chmod(temporary, 0o666 & ~umask())
            os.replace(temporary, target)
        except OSError as err:
            temporary.unlink(missing_ok=True)
            raise OutputError(f"cannot write output {target}: {err.strerror or err}") from err
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
    return target
