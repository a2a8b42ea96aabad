"""Local spool directories: where a step's files wait until the IO manager has stored them.

Dagster stores an asset's output after the asset function returns, so the files an asset returns
(:class:`~tweet_assets.lake.values.SpooledPages`, ``SpooledTable``) must outlive the function and
go only once :meth:`LakeIOManager.handle_output` is done with them, stored or not. Each step gets
one directory ``$TMPDIR/tweet_assets-spool-<asset>-<random>/`` (``tempfile.gettempdir()``), made by
:func:`open_spool_dir` and removed by :func:`remove_spool_dir`: by the asset itself when it fails,
by the IO manager after ``handle_output`` (success or failure).

A process killed by SIGKILL (or the OOM killer) removes nothing. So each directory holds an
exclusive ``flock`` (POSIX advisory lock, released by the kernel when the process dies) on its
``.lock`` file for as long as it lives, and every new spool directory first sweeps the others:
one whose lock can be taken belongs to a dead process and is removed. A later run on the same
machine (the rerun of a killed run, in practice) so cleans up after it.
"""

from __future__ import annotations

import fcntl
import glob
import os
import shutil
import tempfile
import threading
import time
import weakref

PREFIX = "tweet_assets-spool-"
LOCK = ".lock"
#: A spool directory without its lock file older than this (seconds) was left by a process killed
#: between creating the directory and locking it; younger ones may be being created right now.
UNLOCKED_GRACE_S = 3600.0

_open: dict[str, tuple[int, str | None]] = {}  # spool directory -> (fd holding its lock, run id), this process
_guard = threading.Lock()


def open_spool_dir(name: str, run_id: str | None = None) -> str:
    """Create and lock a fresh spool directory for ``name`` (an asset name) of Dagster run
    ``run_id``, after removing the directories of dead processes (:func:`sweep_stale`); returns
    its absolute path.

    Raises:
        OSError: the temporary directory (``TMPDIR``) is not writable.
    """
    sweep_stale()
    path = tempfile.mkdtemp(prefix=f"{PREFIX}{name}-")
    staging = os.path.join(path, LOCK + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.replace(staging, os.path.join(path, LOCK))  # a sweeper only ever sees a locked .lock
    with _guard:
        _open[path] = (fd, run_id)
    return path


#: The spool's parent directory: Python's tempfile.gettempdir(), i.e. $TMPDIR (then /tmp).
SPOOL_ENV = "TMPDIR"


class SpoolFull(OSError):
    """A spool file could not be written: no space left on its disk (errno ENOSPC, kept)."""


def spool_full(exc: OSError, path: str) -> OSError:
    """``exc`` as :class:`SpoolFull` naming the spool directory, its free bytes and what to set,
    when it is ENOSPC (or EDQUOT, a quota); any other error unchanged."""
    import errno

    full = exc.errno in (errno.ENOSPC, errno.EDQUOT) or "[Errno 28]" in str(exc) or "No space left" in str(exc)  # pyarrow's errors carry no errno
    if not full or isinstance(exc, SpoolFull):
        return exc
    directory = os.path.dirname(os.path.abspath(path))
    try:
        free = f"{shutil.disk_usage(directory).free:,} bytes free"
    except OSError:
        free = "free space unknown"
    return SpoolFull(
        errno.ENOSPC,
        f"no space left to spool {os.path.basename(path)} in {directory} ({free}; the spool is under "
        f"{SPOOL_ENV}={tempfile.gettempdir()}): set {SPOOL_ENV} to a directory on a disk with room for the "
        "run's days (about a day's uncompressed pages or table each), or run fewer days per run "
        "(TWEET_ASSETS_BACKFILL_PARTITIONS_PER_RUN)",
    )


def remove_spool_dir(path: str | None) -> None:
    """Remove spool directory ``path`` and everything in it, and release its lock; no error if
    it is already gone. ``None`` and directories that are not spool directories are ignored."""
    if not path or not os.path.basename(os.path.normpath(path)).startswith(PREFIX):
        return
    with _guard:
        fd, _ = _open.pop(path, (None, None))
    shutil.rmtree(path, ignore_errors=True)
    if fd is not None:
        os.close(fd)


def remove_run_spool_dirs(run_id: str) -> list[str]:
    """Remove every spool directory this process opened for ``run_id`` (the end of a step or run,
    whatever its outcome); returns their paths."""
    with _guard:
        paths = [path for path, (_, owner) in _open.items() if owner == run_id]
    for path in paths:
        remove_spool_dir(path)
    return paths


class SpillDir:
    """A locked spool directory with :class:`tempfile.TemporaryDirectory`'s interface (``name``,
    ``cleanup()``), for files a computation writes and reads back itself (``day_rows``' spilled
    runs, Arrow IPC). Removed by :meth:`cleanup`, when garbage-collected, or, after the process is
    killed, by the sweep of the next spool directory opened on the machine (:func:`sweep_stale`).

    Raises:
        OSError: the temporary directory (``TMPDIR``) is not writable.
    """

    def __init__(self, name: str):
        self.name = open_spool_dir(name)
        self._finalizer = weakref.finalize(self, remove_spool_dir, self.name)

    def cleanup(self) -> None:
        """Remove the directory and its files now (idempotent)."""
        self._finalizer()


def owning_spool_dir(file_path: str) -> str | None:
    """The spool directory holding ``file_path`` (a spooled value's file), or None."""
    parent = os.path.dirname(os.path.abspath(file_path))
    return parent if os.path.basename(parent).startswith(PREFIX) else None


def sweep_stale(root: str | None = None) -> list[str]:
    """Remove the spool directories under ``root`` (default ``tempfile.gettempdir()``) whose
    process is gone (their lock is free); returns the removed paths. Directories of live
    processes, this one included, are left alone."""
    removed = []
    for path in glob.glob(os.path.join(root or tempfile.gettempdir(), PREFIX + "*")):
        with _guard:
            if path in _open:
                continue
        lock = os.path.join(path, LOCK)
        try:
            fd = os.open(lock, os.O_RDONLY)
        except FileNotFoundError:
            try:
                if time.time() - os.stat(path).st_mtime > UNLOCKED_GRACE_S:
                    shutil.rmtree(path, ignore_errors=True)
                    removed.append(path)
            except OSError:
                pass
            continue
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a live process owns it
            os.close(fd)
            continue
        try:
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
        finally:
            os.close(fd)
    return removed
