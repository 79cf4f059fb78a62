"""The learning-rate schedule (linear warm-up, poly decay) and its fit to a time budget.

Pure: the rates are functions of the settings and the iterations; the loop passes the times
in.
"""

from __future__ import annotations

import math

from panoptool.training.config import OptimConfig


def learning_rate(iteration: int, total: int, config: OptimConfig) -> float:
    """Learning rate of ``iteration`` (0-based) in a schedule of ``total`` iterations:
    linear warm-up from 0.1 lr over ``min(warmup_iters, total // 10)`` iterations, times the
    poly decay ``(1 - iteration / total) ** poly_power``.

    >>> c = OptimConfig(lr=0.01, warmup_iters=10)
    >>> round(learning_rate(0, 1000, c), 6), round(learning_rate(10, 1000, c), 6)
    (0.001, 0.00991)
    >>> learning_rate(1000, 1000, c)
    0.0
    """
    return Schedule(config, total, iteration).rate()


class Schedule:
    """The learning-rate schedule of :func:`learning_rate`, kept continuous when its length
    changes mid-run (a time budget refits it, ``--resume --iters N`` stretches it).

    The schedule is followed as two progress fractions: ``poly`` (how much of the poly decay
    is spent) and ``warm`` (how much of the warm-up). Each iteration moves them an equal
    share of what is left to the current end, so with a fixed length ``total`` they are
    ``i / total`` and ``i / warmup`` and the rates equal :func:`learning_rate`; when the
    length changes only the pace changes and the rate has no jump.

    >>> c = OptimConfig(lr=0.01, warmup_iters=10)
    >>> s = Schedule(c, 1000)
    >>> rates = []
    >>> for i in range(500):
    ...     rates.append(s.rate()); s.step(i, 1000 if i < 100 else 400)
    >>> round(rates[50], 6) == round(learning_rate(50, 1000, c), 6)
    True
    >>> round(rates[99], 6), round(rates[100], 6)       # refitted to 400 after 100: no jump
    (0.009104, 0.009095)
    >>> round(learning_rate(100, 400, c), 5), rates[-1]  # where the plain formula would be
    (0.00772, 0.0)
    """

    def __init__(self, config: OptimConfig, total: int, iteration: int = 0,
                 state: dict | None = None):
        self.lr, self.power, self.warmup_iters = config.lr, config.poly_power, config.warmup_iters
        if state:
            self.poly, self.warm = float(state["poly"]), float(state["warm"])
        else:  # a fresh run, or a checkpoint from before the schedule was kept
            warmup = self._warmup(total)
            self.poly = min(1.0, iteration / max(total, 1))
            self.warm = 1.0 if iteration >= warmup else iteration / warmup

    def _warmup(self, total: int) -> int:
        return min(self.warmup_iters, total // 10)

    def rate(self) -> float:
        """Learning rate of the next iteration."""
        factor = max(0.0, 1.0 - self.poly) ** self.power
        if self.warm < 1.0:
            factor *= 0.1 + 0.9 * self.warm
        return self.lr * factor

    def step(self, iteration: int, total: int) -> None:
        """Advance past ``iteration`` (0-based) in a schedule now ``total`` long."""
        self.poly += (1.0 - self.poly) / max(total - iteration, 1)
        if self.warm < 1.0:  # a warm-up cut short by a refit ends at its new pace
            warmup = self._warmup(total)
            left = max(warmup - iteration, math.ceil((1.0 - self.warm) * warmup - 1e-9), 1)
            self.warm = min(1.0, self.warm + (1.0 - self.warm) / left)

    def state(self) -> dict:
        return {"poly": self.poly, "warm": self.warm}


class ScheduleFitter:
    """Fits the schedule's length to a time budget from the measured speed.

    The speed is measured from the end of the first (slower) iteration; the length is
    refitted when 5%, 25% and 50% of the budget are spent, keeping 5 s for the last
    checkpoint. Without a budget it never changes the length.

    >>> f = ScheduleFitter(budget_s=100.0, max_iters=10_000)
    >>> f.update(1, 10.0, 10.0) is None        # first iteration: start measuring
    True
    >>> f.update(3, 12.0, 12.0) is None        # 5% spent, but fewer than 3 timed iterations
    True
    >>> f.update(9, 18.0, 18.0)                # 1 it/s: 9 + (100 - 18 - 5) = 86
    86
    """

    FRACTIONS = (0.05, 0.25, 0.5)

    def __init__(self, budget_s: float, max_iters: int):
        self.budget_s, self.max_iters = budget_s, max_iters
        self.todo = list(self.FRACTIONS) if budget_s else []
        self.mark: tuple[int, float] | None = None

    def update(self, iteration: int, now: float, elapsed: float) -> int | None:
        """Call after each iteration (``now``: a clock; ``elapsed``: training seconds of the
        whole run, resumed parts included); returns a new schedule length or None."""
        if self.mark is None:
            self.mark = (iteration, now)
            return None
        if not self.todo or elapsed < self.todo[0] * self.budget_s \
                or iteration - self.mark[0] < 3:
            return None
        self.todo.pop(0)
        rate = (iteration - self.mark[0]) / max(now - self.mark[1], 1e-9)
        fitted = iteration + int(max(0.0, self.budget_s - elapsed - 5.0) * rate)
        return max(iteration + 1, min(self.max_iters, fitted))

    def spent(self, elapsed: float) -> bool:
        return bool(self.budget_s) and elapsed >= self.budget_s
