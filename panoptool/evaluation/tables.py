"""Small table helpers: Markdown and CSV from lists of dicts or DataFrames."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # pandas is imported when a table is made: it is slow to import
    import pandas as pd


def _fmt(value: Any, digits: int) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def to_markdown(table: pd.DataFrame | Sequence[dict], digits: int = 2) -> str:
    """A GitHub Markdown table; floats with ``digits`` decimals, NaN as ``-``.

    >>> print(to_markdown([{"run": "a", "PQ": 51.234}]))
    | run | PQ |
    |---|---|
    | a | 51.23 |
    """
    import pandas as pd

    df = table if isinstance(table, pd.DataFrame) else pd.DataFrame(list(table))
    header = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v, digits) for v in row) + " |"
            for row in df.itertuples(index=False, name=None)]
    return "\n".join([header, sep, *body])
