"""Learning-rate schedule: warm-up then poly decay, continuous when its length is refitted."""

from __future__ import annotations

import numpy as np
import pytest

from panoptool.training.config import OptimConfig
from panoptool.training.schedule import Schedule, ScheduleFitter, learning_rate


def test_learning_rate_warmup_then_poly():
    c = OptimConfig(lr=0.01, warmup_iters=10, poly_power=0.9)
    lrs = [learning_rate(i, 100, c) for i in range(101)]
    assert lrs[0] == pytest.approx(0.001)
    assert all(a < b for a, b in zip(lrs[:10], lrs[1:10]))  # warm-up rises
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))  # poly decays
    assert lrs[50] == pytest.approx(0.01 * 0.5 ** 0.9)
    assert lrs[100] == 0.0


@pytest.mark.parametrize("new_total", [150, 3000])
def test_schedule_has_no_jump_when_refitted(new_total):
    c = OptimConfig(lr=0.01, warmup_iters=50)
    s, rates = Schedule(c, 1000), []
    for i in range(120):
        rates.append(s.rate())
        s.step(i, 1000 if i < 30 else new_total)  # refit during the warm-up
    steps = np.abs(np.diff(rates))
    warmup = min(50, new_total // 10)
    assert steps.max() <= 0.9 * c.lr / warmup + 1e-12  # never more than a warm-up step
    peak = int(np.argmax(rates))  # rises through the warm-up, then only falls
    assert 30 < peak <= 50
    assert np.all(np.diff(rates[:peak + 1]) > 0) and np.all(np.diff(rates[peak:]) < 0)


def test_schedule_resumes_from_its_state():
    c = OptimConfig(lr=0.01, warmup_iters=10)
    a = Schedule(c, 200)
    for i in range(40):
        a.step(i, 200 if i < 20 else 120)
    b = Schedule(c, 120, 40, a.state())  # a resumed run: same rates as the straight one
    for i in range(40, 100):
        assert b.rate() == a.rate()
        a.step(i, 120)
        b.step(i, 120)


def test_fitter_never_refits_without_a_budget_and_stops_when_spent():
    f = ScheduleFitter(budget_s=0.0, max_iters=50)
    assert all(f.update(i, float(i), float(i)) is None for i in range(1, 100))
    assert not f.spent(1e9)
    g = ScheduleFitter(budget_s=60.0, max_iters=50)
    g.update(1, 0.0, 0.0)
    assert g.update(10, 9.0, 9.0) == 50  # 1 it/s would give 56 iterations: capped at --iters
    assert g.spent(60.0) and not g.spent(59.9)
