"""The panoptool error family.

Library code raises these; the CLI turns them into one line on stderr and a non-zero exit
status. Messages name the file (or argument), what was expected and what was found.
"""

from __future__ import annotations

import os


class PanoptoolError(Exception):
    """Base class of every error panoptool raises on purpose."""


class ConfigError(PanoptoolError, ValueError):
    """A setting (option, argument, config value) is out of range or inconsistent."""


class InputError(PanoptoolError):
    """An input file or folder is missing, unreadable or malformed.

    Parameters
    ----------
    path : str or os.PathLike or None
        The offending file or folder; it leads the message.
    problem : str
        What is wrong, ideally with the expected and the actual value.
    """

    def __init__(self, path: str | os.PathLike | None, problem: str):
        self.path = None if path is None else os.fspath(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path else problem)

    def __reduce__(self):  # picklable across worker processes
        return (type(self), (self.path, self.problem))


class OutputError(PanoptoolError):
    """An output location cannot be written or already holds results."""


class ArrayError(InputError, ValueError):
    """An array has the wrong shape, dtype or values: an argument of a pure function (the
    maps, the ground truth, the targets), or the content of a file.

    ``path`` is the file the array came from where known (``None`` for an argument; the
    message then names the argument). A ``ValueError`` too, for callers that catch that.
    """
