"""Summed statistics -> metrics and the per-class table (``panoptool.evaluation.summary``)."""

import numpy as np
import pandas as pd
import pytest

from panoptool.evaluation.config import BOUNDARY_KEYS, METRIC_KEYS
from panoptool.evaluation.image import ImageStats, evaluate_image
from panoptool.evaluation.metrics import instance, panoptic, semantic
from panoptool.evaluation.plan import plan_jobs
from panoptool.evaluation.summary import PerClassTable, summarize
from panoptool.labels import CLASS_NAMES, LABEL_TO_TRAIN

from official import make_results


@pytest.fixture(scope="module")
def total(make_synth, tmp_path_factory):
    root = make_synth(n=3)
    res = make_results(root, "val", tmp_path_factory.mktemp("sum") / "res", "noisy", seed=4)
    jobs, _ = plan_jobs(root, "val", res, None)
    out = ImageStats()
    for job in jobs:
        out = out + evaluate_image(job)
    return out


def test_nothing_evaluated():
    metrics, table = summarize(ImageStats(), 5)
    assert metrics == {**{k: None for k in METRIC_KEYS}, "n_images": 5}
    assert list(table.columns) == ["train_id", "class", "IoU", "iIoU", "AP", "AP50", "PQ", "SQ",
                                   "RQ"]
    assert table["class"].tolist() == list(CLASS_NAMES)
    assert all(np.isnan(table[c]).all() for c in list(table.columns)[2:])


def test_per_class_rows_are_train_ids(total):
    """Instance classes and panoptic categories are listed in label-id order by the metrics;
    the table has them at their train ids."""
    metrics, table = summarize(total, 3)
    sem, ins, pan = (semantic.compute(total.semantic), instance.compute(total.instance),
                     panoptic.compute(total.panoptic))
    assert metrics["mIoU"] == pytest.approx(100 * sem["mIoU"])
    assert metrics["AP"] == pytest.approx(100 * ins["AP"])
    assert metrics["PQ_th"] == pytest.approx(100 * pan["PQ_th"])
    for k, label in enumerate(instance.INSTANCE_LABEL_IDS):
        t = LABEL_TO_TRAIN[label]
        assert np.isnan(ins["ap"][k]) and np.isnan(table["AP"][t]) \
            or table["AP"][t] == pytest.approx(100 * ins["ap"][k]), label
    for k, label in enumerate(panoptic.CATEGORY_IDS):
        t = LABEL_TO_TRAIN[label]
        assert np.isnan(pan["pq"][k]) and np.isnan(table["PQ"][t]) \
            or table["PQ"][t] == pytest.approx(100 * pan["pq"][k]), label
    stuff = [LABEL_TO_TRAIN[i] for i in panoptic.CATEGORY_IDS
             if i not in instance.INSTANCE_LABEL_IDS]
    assert np.isnan(table["AP"][stuff]).all()
    assert not any(k in metrics for k in BOUNDARY_KEYS)


def test_boundary_keys_only_with_boundary_statistics(total):
    from panoptool.evaluation.metrics import boundary

    metrics, table = summarize(ImageStats(boundary=boundary.BoundaryStats()), 1)
    assert all(metrics[k] is None for k in BOUNDARY_KEYS)
    assert "boundary_PQ" in table.columns and np.isnan(table["boundary_PQ"]).all()


def test_per_class_table_writes_as_a_dataframe():
    rows = np.array([2, 0])
    ours = PerClassTable({"train_id": np.arange(3), "class": np.array(list("abc"), object)})
    frame = pd.DataFrame({"train_id": np.arange(3), "class": list("abc")})
    for t in (ours, frame):
        t["IoU"] = np.nan
        t["IoU"] = np.array([1.0, 2.0, 3.0])
        t.loc[rows, "AP"] = np.array([5.0, 6.0])  # a new column: NaN elsewhere
        t.loc[rows, "IoU"] = np.array([7.0, 8.0])
    ours.insert_first("subset", "2 of 3 images")
    frame.insert(0, "subset", "2 of 3 images")
    pd.testing.assert_frame_equal(ours.to_frame(), frame)
