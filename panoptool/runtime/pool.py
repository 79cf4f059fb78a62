"""Run a per-image function over many images, on all cores, with a progress bar."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator, Sequence, TypeVar

from rich.console import Console
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                           TimeElapsedColumn, TimeRemainingColumn)

T = TypeVar("T")
R = TypeVar("R")

#: Progress and messages go to stderr, so stdout stays clean for tables and pipes.
console = Console(stderr=True)


def default_workers() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def resolve_workers(workers: int | None) -> int:
    """``None`` or 0 -> all cores; otherwise at least 1."""
    return default_workers() if not workers else max(1, int(workers))


def make_progress(transient: bool = False) -> Progress:
    """The progress bar every stage uses."""
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                    TextColumn("eta"), TimeRemainingColumn(), console=console,
                    transient=transient, disable=os.environ.get("PANOPTOOL_NO_PROGRESS") == "1")


def keep_freed_memory() -> None:
    """Let glibc reuse freed large buffers instead of returning them to the system.

    Per-image stages allocate a dozen full-size arrays per 1024x2048 image; by default
    glibc maps each one fresh (above 128 KiB) and the kernel zero-fills its pages, which
    costs a third of the time of a fast stage. Raising the mmap and trim thresholds keeps
    those pages. Inherited by forked workers; a no-op where glibc's ``mallopt`` is missing.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return
    _MALLOC_TUNED = True
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: mmap only blocks above 64 MiB
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MiB of free heap
    except (OSError, AttributeError):
        pass


_MALLOC_TUNED = False


def run_parallel(func: Callable[[T], R], items: Sequence[T], *, workers: int | None = None,
                 description: str = "working", chunksize: int = 1,
                 show_progress: bool = True) -> Iterator[R]:
    """Apply ``func`` to every item, yielding results in the order of ``items``.

    With one worker everything runs in this process (easy to debug and profile); otherwise in
    a pool of worker processes, each of which dies with this process
    (:func:`panoptool.runtime.guard.die_with_parent`). ``func`` must be picklable (a module-level
    function or a ``functools.partial`` of one). An exception in a worker is re-raised here,
    with its type.
    """
    keep_freed_memory()
    n_workers = min(resolve_workers(workers), max(1, len(items)))
    if n_workers > 1:
        # forked workers share this process's pages until they write them; frozen objects
        # are never visited by the workers' garbage collector, so it does not copy them all
        # (without this the pool's memory grows with the length of the run)
        gc.freeze()
    with make_progress() as progress:
        task = progress.add_task(description, total=len(items), rate="",
                                 visible=show_progress)
        results: Iterable[R]
        if n_workers == 1:
            results = map(func, items)
            pool = None
        else:
            from panoptool.runtime.guard import worker_initializer
            # workers die with this process (PR_SET_PDEATHSIG): a SIGKILL, the OOM killer
            # or a scheduler's time limit never leaves orphans writing outputs
            pool = ProcessPoolExecutor(max_workers=n_workers, initializer=worker_initializer,
                                       initargs=(os.getpid(),))
            results = pool.map(func, items, chunksize=chunksize)
        try:
            for done, result in enumerate(results, start=1):
                elapsed = progress.tasks[0].elapsed or 0.0
                rate = f"{done / elapsed:.1f} img/s" if elapsed > 0 else ""
                progress.update(task, advance=1, rate=rate)
                yield result
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
                gc.unfreeze()
