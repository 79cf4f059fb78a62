"""The one way panoptool compiles its numba kernels (imported only by kernel modules, so that
numba loads only where a kernel runs)."""

from __future__ import annotations

import numba


def njit(function=None, *, inline: bool = False):
    """``numba.njit(nogil=True)`` with the on-disk cache; without it where numba finds no
    writable cache folder (neither beside the kernel's file nor the user's cache), in which
    case each run compiles anew. ``inline=True``: a small helper that numba inlines into its
    callers (a call with many array arguments costs more than the helper's work).

    Use as ``@njit`` or ``@njit(inline=True)``.
    """
    options = {"nogil": True, **({"inline": "always"} if inline else {})}

    def compile_(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            return numba.njit(**options)(fn)

    return compile_ if function is None else compile_(function)
