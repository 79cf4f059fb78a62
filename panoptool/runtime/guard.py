"""Process hygiene: workers that die with their parent, one writer per output folder, and
third-party libraries kept quiet on stderr.

* :func:`die_with_parent` runs in every worker process (the process pool of
  :func:`panoptool.runtime.pool.run_parallel`, the DataLoader workers of ``train`` and ``infer``).
  On Linux it asks the kernel (``prctl(PR_SET_PDEATHSIG, SIGKILL)``) to kill the worker the
  moment its parent dies, whatever killed the parent (SIGKILL, the OOM killer, a
  scheduler's time limit); elsewhere a daemon thread checks every half second that the
  parent is still alive and ends the worker when it is not.
* :func:`output_lock` takes an advisory ``flock`` on an output folder for the whole run, so a
  second run started into the same folder refuses at once with
  "another panoptool <stage> (pid N) is writing here" instead of doing the work twice.
* :func:`quiet_third_party` silences the informational chatter of OpenCV, libpng and
  llvmlite/numba on stderr; their real errors still reach the user as exceptions.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import signal
import threading
from pathlib import Path
from typing import Iterator

from panoptool.errors import OutputError

PathLike = str | os.PathLike

_PR_SET_PDEATHSIG = 1
#: Name of the lock file an output folder holds while a stage writes into it.
LOCK_NAME = ".panoptool.lock"


def die_with_parent(parent_pid: int | None = None) -> str:
    """Make this (worker) process end when its parent process ends.

    Parameters
    ----------
    parent_pid : the pid the parent had when it started this worker (``os.getppid()`` in the
        worker if None). If the parent is already gone when this runs (it died between the
        fork and this call), the worker exits at once.

    Returns
    -------
    ``"pdeathsig"`` where the kernel signal is armed, ``"watchdog"`` where a polling thread
    is used instead.
    """
    parent = os.getppid() if parent_pid is None else int(parent_pid)
    how = "watchdog"
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) == 0:
            how = "pdeathsig"
    except (OSError, AttributeError):  # not Linux
        pass
    if os.getppid() != parent:  # parent died before the signal was armed
        os._exit(1)
    if how == "watchdog":
        thread = threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                                  name="panoptool-parent-watchdog")
        thread.start()
    return how


def _watch_parent(parent: int, interval: float = 0.5) -> None:
    import time
    while True:
        if os.getppid() != parent:
            os._exit(1)
        time.sleep(interval)


def worker_initializer(parent_pid: int) -> None:
    """Initializer of panoptool's worker processes (picklable, for
    ``ProcessPoolExecutor(initializer=...)`` and DataLoader ``worker_init_fn``):
    :func:`die_with_parent`, SIGINT ignored and quiet third-party libraries.

    Ctrl-C reaches the whole process group; only the parent acts on it (it stops handing
    out work, lets the running items finish their atomic writes, checkpoints, and exits),
    so workers neither die mid-item nor make the parent see a broken pool or data queue.
    """
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    quiet_third_party()


def quiet_third_party() -> None:
    """Silence informational stderr output of OpenCV (and through it libpng) and numba.

    OpenCV's log level is set to errors only (``cv2.setLogLevel``; libpng's warnings reach
    stderr through OpenCV's decoder), and numba's/llvmlite's loggers to ERROR. Failures are
    not hidden: decoders still return None / raise, and panoptool turns that into an
    :class:`~panoptool.errors.InputError`.
    """
    import logging
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    try:
        import cv2
        if hasattr(cv2, "setLogLevel"):
            cv2.setLogLevel(2)  # 0 silent, 1 fatal, 2 error, 3 warning, 4 info
        else:
            import cv2.utils.logging as cv_logging
            cv_logging.setLogLevel(cv_logging.LOG_LEVEL_ERROR)
    except (ImportError, AttributeError):  # pragma: no cover - cv2 is a dependency
        pass
    import warnings
    for name in ("numba", "llvmlite", "PIL"):
        logging.getLogger(name).setLevel(logging.ERROR)
        warnings.filterwarnings("ignore", module=name)  # performance/deprecation notes


@contextlib.contextmanager
def output_lock(folder: PathLike, stage: str) -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``folder`` (created if missing) while writing.

    The lock is ``flock`` on ``folder/.panoptool.lock``, which records the stage and the pid
    of its holder; the kernel releases it when the process dies, however it dies, so a
    killed run never blocks the next one. The file is removed on a clean exit.

    Raises
    ------
    OutputError
        If another process holds the lock: "another panoptool <stage> (pid N) is writing
        here", or if the folder cannot be created or the lock file written.
    """
    import fcntl

    from panoptool.io.files import make_folder
    folder = Path(folder)
    make_folder(folder)
    path = folder / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            from panoptool.io.files import output_error
            raise output_error(path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                from panoptool.io.files import output_error
                raise output_error(path, exc) from None
            holder = _read_holder(path)
            raise OutputError(f"{folder}: another panoptool {holder} is writing here; wait "
                              f"for it to finish or choose another --out") from None
        try:  # the holder may have removed the file between our open and flock: retry
            same = os.path.samestat(os.fstat(fd), os.stat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{stage} {os.getpid()}\n".encode())
        yield path
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
        os.close(fd)


def _read_holder(path: Path) -> str:
    try:
        stage, pid = path.read_text(encoding="utf-8").split()[:2]
        return f"{stage} (pid {int(pid)})"
    except (OSError, ValueError):
        return "run"
