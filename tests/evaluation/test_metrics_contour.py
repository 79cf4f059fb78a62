"""Contour-head score (panoptool.evaluation.metrics.contour, report --maps) against a plain reference
written here: per-threshold loops over pixel pairs, and BSDS's ODS/OIS bookkeeping."""

import json

import numpy as np
import pytest
from click.testing import CliRunner

from panoptool.io import formats
from panoptool.evaluation.metrics import contour


def plain_counts(prob, gt, tol):
    """BSDS-style counts by brute force: every threshold, every predicted and gt pixel."""
    t32 = contour.THRESHOLDS.astype(np.float32)
    gy, gx = np.nonzero(gt)
    r2 = tol * tol
    cnt_r, cnt_p, sum_p = (np.zeros(len(t32), np.int64) for _ in range(3))
    for k, t in enumerate(t32):
        py, px = np.nonzero(prob >= t)
        sum_p[k] = len(py)
        for y, x in zip(py, px):
            if any((y - a) ** 2 + (x - b) ** 2 <= r2 for a, b in zip(gy, gx)):
                cnt_p[k] += 1
        for a, b in zip(gy, gx):
            if any((y - a) ** 2 + (x - b) ** 2 <= r2 for y, x in zip(py, px)):
                cnt_r[k] += 1
    return cnt_r, len(gy), cnt_p, sum_p


def plain_prf(cr, sr, cp, sp):
    r = cr / sr if sr else 0.0
    p = cp / sp if sp else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def plain_ods_ois(per_image):
    """collect_eval_bdry: ODS from summed counts, OIS from per-image best thresholds."""
    n = len(contour.THRESHOLDS)
    tot = [np.zeros(n), 0, np.zeros(n), np.zeros(n)]
    ois = [0, 0, 0, 0]
    for cr, sr, cp, sp in per_image:
        tot[0] += cr
        tot[1] += sr
        tot[2] += cp
        tot[3] += sp
        fs = [plain_prf(cr[k], sr, cp[k], sp[k])[2] for k in range(n)]
        k = int(np.argmax(fs))
        ois = [ois[0] + cr[k], ois[1] + sr, ois[2] + cp[k], ois[3] + sp[k]]
    fs = [plain_prf(tot[0][k], tot[1], tot[2][k], tot[3][k]) for k in range(n)]
    k = int(np.argmax([f[2] for f in fs]))
    return fs[k], contour.THRESHOLDS[k], plain_prf(*ois)


def sparse_map(rng, h, w, density=0.08):
    prob = np.zeros((h, w), np.float32)
    on = rng.random((h, w)) < density
    prob[on] = rng.random(on.sum()).astype(np.float32)
    return prob


@pytest.mark.parametrize("seed", range(4))
def test_counts_equal_plain_loops(seed):
    rng = np.random.default_rng(seed)
    per_image, total = [], contour.ContourStats()
    for _ in range(3):
        h, w = (int(v) for v in rng.integers(8, 20, 2))
        gt = rng.random((h, w)) < 0.07
        prob = sparse_map(rng, h, w)
        prob[gt & (rng.random((h, w)) < 0.5)] = 0.8  # some hits
        tol = float(rng.choice([1.0, 1.5, 2.3, 3.0]))
        stats = contour.update(prob, gt, tol, nms=False)
        ref = plain_counts(prob, gt, tol)
        assert np.array_equal(stats.cnt_r, ref[0])
        assert stats.sum_r == ref[1]
        assert np.array_equal(stats.cnt_p, ref[2])
        assert np.array_equal(stats.sum_p, ref[3])
        per_image.append(ref)
        total = total + stats
    res = contour.compute(total)
    (p, r, f), t, (op, orr, of) = plain_ods_ois(per_image)
    assert res["ODS"] == pytest.approx(f, abs=1e-12)
    assert res["P"] == pytest.approx(p, abs=1e-12) and res["R"] == pytest.approx(r, abs=1e-12)
    assert res["threshold"] == t
    assert res["OIS"] == pytest.approx(of, abs=1e-12)
    assert res["OIS_P"] == pytest.approx(op, abs=1e-12)
    assert res["OIS_R"] == pytest.approx(orr, abs=1e-12)
    assert res["OIS"] >= res["ODS"] - 1e-12  # per-image thresholds can only help


def test_by_hand():
    # a vertical ground-truth line at x = 5; the prediction: the line shifted by 2 px at
    # 0.6, plus one stray pixel far away at 0.9
    gt = np.zeros((10, 12), bool)
    gt[:, 5] = True
    prob = np.zeros((10, 12), np.float32)
    prob[:, 7] = 0.6
    prob[0, 0] = 0.9
    s1 = contour.update(prob, gt, 1.5, nms=False)  # tolerance 1.5 < 2: nothing matches
    assert s1.cnt_p.max() == 0 and s1.cnt_r.max() == 0
    s2 = contour.update(prob, gt, 2.0, nms=False)  # 2 px: the shifted line matches
    k_low, k_high = 59, 60  # thresholds 0.60 and 0.61
    assert s2.sum_p[k_low] == 11 and s2.cnt_p[k_low] == 10 and s2.cnt_r[k_low] == 10
    assert s2.sum_p[k_high] == 1 and s2.cnt_p[k_high] == 0 and s2.cnt_r[k_high] == 0
    res = contour.compute(s2)
    assert res["ODS"] == pytest.approx(2 * (10 / 11) * 1.0 / (10 / 11 + 1.0))
    assert res["threshold"] == pytest.approx(0.01)  # first of the equal best thresholds


def test_perfect_prediction_scores_one_and_noise_less():
    from panoptool.targets.core import inner_boundary

    inst = np.full((40, 60), 7, np.int32)
    inst[5:20, 5:25] = 26000
    inst[5:20, 25:40] = 26001  # touching car: a 2-px shared boundary
    inst[25:35, 10:50] = 24000
    gt = inner_boundary(inst)
    perfect = contour.compute(contour.update(gt.astype(np.float32), gt, 1.5))
    assert perfect["ODS"] == pytest.approx(1.0) and perfect["OIS"] == pytest.approx(1.0)
    rng = np.random.default_rng(0)
    noisy = np.clip(gt * 0.2 + rng.random(gt.shape) * 0.9, 0, 1).astype(np.float32)
    res = contour.compute(contour.update(noisy, gt, 1.5))
    assert 0.3 < res["ODS"] < 0.99
    # a 3-px thick band around the boundary, thinned by the NMS, keeps recall and precision
    import cv2
    thick = cv2.dilate(gt.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(np.float32)
    res = contour.compute(contour.update(thick, gt, 1.5))
    assert res["R"] > 0.95 and res["P"] > 0.9
    # without NMS the tolerance match (no one-to-one assignment, unlike BSDS's
    # correspondPixels) cannot see the thickness: all three rows of the band "match"
    raw = contour.update(thick, gt, 1.5, nms=False)
    thin = contour.update(thick, gt, 1.5)
    assert contour.compute(raw)["P"] == pytest.approx(1.0)
    assert raw.sum_p[0] > 2.5 * thin.sum_p[0]


def test_nms_thins_to_the_ridge():
    h, w = 21, 31
    yy, xx = np.mgrid[:h, :w]
    # a soft vertical ridge at x = 12 and a soft diagonal ridge y = x - 5
    vertical = np.exp(-((xx - 12) ** 2) / 4.0).astype(np.float32)
    thin = contour.contour_nms(vertical)
    assert (thin[:, 12] == vertical[:, 12]).all()
    low = contour.THRESHOLDS[0]  # values below the first threshold never count
    assert (thin[:, np.r_[0:12, 13:w]] < low).all()
    diagonal = np.exp(-((yy - xx + 5) ** 2) / 8.0).astype(np.float32)
    kept = contour.contour_nms(diagonal) >= low
    away = (yy > 1) & (yy < h - 2) & (xx > 1) & (xx < w - 2)  # from the image border
    assert kept[(yy - xx + 5 == 0) & away].all()
    assert kept[(np.abs(yy - xx + 5) >= 2) & away].sum() == 0
    # update(nms=True) scores the thinned map
    gt = np.zeros((h, w), bool)
    gt[:, 13] = True
    a = contour.update(vertical, gt, 1.0)
    b = contour.update(contour.contour_nms(vertical), gt, 1.0, nms=False)
    assert np.array_equal(a.sum_p, b.sum_p) and np.array_equal(a.cnt_r, b.cnt_r)
    assert a.sum_p[0] == h  # one pixel per row survives


def test_tolerance_and_disk():
    assert contour.tolerance_px((3, 4), 0.5) == 2.5
    dy, dx = contour.disk_offsets(1.5)
    assert len(dy) == 9 and (dy[0], dx[0]) == (0, 0)
    assert len(contour.disk_offsets(2.0)[0]) == 13
    with pytest.raises(ValueError):
        contour.tolerance_px((3, 4), 0)


# --- report --maps --------------------------------------------------------------------------

def _write_maps(root, maps, kind):
    from panoptool.io.cityscapes import list_samples, read_ground_truth
    from panoptool.targets.core import contour_target, semantic_target

    rng = np.random.default_rng(1)
    for s in list_samples(root, "val"):
        label, inst = read_ground_truth(s)
        prob = contour_target(inst, dilation=1 if kind == "perfect" else 3).astype(np.float32)
        if kind == "thick":
            prob = np.clip(prob * 0.8 + rng.random(prob.shape) * 0.3, 0, 1)
        h, w = label.shape
        formats.write_maps(formats.maps_path(maps, "val", s.stem),
                           train_ids=semantic_target(label), confidence=np.ones((h, w)),
                           contour_prob=prob, offset_yx=np.zeros((2, h, w)))


def test_report_maps_scores_and_merges(make_synth, tmp_path):
    from official import make_results
    from panoptool_cli import main

    root = make_synth(n=3)
    for kind in ("perfect", "thick"):
        _write_maps(root, tmp_path / kind, kind)
    out = tmp_path / "rep"
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--maps",
                                      str(tmp_path / "perfect"), "--out", str(out),
                                      "--workers", "1"])
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert m["n_images"] == 3
    assert m["contour_ODS"] == pytest.approx(100.0) and m["contour_OIS"] == pytest.approx(100.0)
    assert "contour_ODS" in r.output
    # with --results: the mask metrics and the contour score in one metrics.json; workers
    # do not change the numbers
    results = make_results(root, "val", tmp_path / "res", "noisy", seed=2)
    got = []
    for workers in ("1", "2"):
        out = tmp_path / f"both{workers}"
        r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--results",
                                          str(results), "--maps", str(tmp_path / "thick"),
                                          "--out", str(out), "--workers", workers,
                                          "--no-cache"])
        assert r.exit_code == 0, r.output
        got.append(json.loads((out / "metrics.json").read_text()))
    assert got[0]["PQ"] is not None and got[0] == got[1]
    assert 0 < got[0]["contour_ODS"] < 100 and got[0]["contour_OIS"] >= got[0]["contour_ODS"]
    assert 0 < got[0]["contour_threshold"] < 1


def test_report_maps_bad_input(make_synth, tmp_path):
    from panoptool_cli import main

    root = make_synth(n=3)
    maps = tmp_path / "maps"
    _write_maps(root, maps, "perfect")
    victim = sorted(maps.rglob("*_maps.npz"))[0]
    victim.unlink()
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--maps", str(maps),
                                      "--out", str(tmp_path / "o")])
    assert r.exit_code == 1
    assert "prediction maps not found" in r.output and victim.name in r.output
    victim.write_bytes(b"not a zip")
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--maps", str(maps),
                                      "--out", str(tmp_path / "o"), "--workers", "1"])
    assert r.exit_code == 1 and "cannot read .npz" in r.output
    assert not (tmp_path / "o" / "metrics.json").exists()
    r = CliRunner().invoke(main.cli, ["report", "--root", str(root), "--maps", str(maps),
                                      "--contour-tolerance", "1.5"])
    assert r.exit_code == 2 and "contour-tolerance" in r.output
