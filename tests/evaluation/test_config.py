"""Settings of an evaluation and the names of its metrics (``panoptool.evaluation.config``)."""

from pathlib import Path

import pytest

from panoptool.errors import ConfigError
from panoptool.evaluation import config as C


@pytest.mark.parametrize("kwargs, fragment", [
    ({"split": ""}, "split must be a folder name"),
    ({"split": "../val"}, "split must be a folder name"),
    ({"split": ".hidden"}, "split must be a folder name"),
    ({"workers": -1}, "workers must be >= 0, got -1"),
    ({"boundary_ratio": 0.0}, "boundary ratio must lie in (0, 1), got 0.0"),
    ({"boundary_ratio": 1.0}, "boundary ratio must lie in (0, 1), got 1.0"),
])
def test_bad_settings_are_refused_naming_the_value(kwargs, fragment):
    with pytest.raises(ConfigError) as info:
        C.ReportConfig(**kwargs)
    assert fragment in str(info.value)


def test_metric_keys():
    assert C.ALL_METRIC_KEYS == (C.METRIC_KEYS + C.COCO_METRIC_KEYS + C.BOUNDARY_KEYS
                                 + C.CONTOUR_KEYS)
    assert len(set(C.ALL_METRIC_KEYS)) == len(C.ALL_METRIC_KEYS)
    assert C.METRIC_KEYS[-1] == "n_images"
    from panoptool.evaluation.coco import COCO_METRIC_KEYS

    assert COCO_METRIC_KEYS is C.COCO_METRIC_KEYS  # one definition


def test_compare_takes_the_coco_mask_ap_columns(tmp_path):
    from panoptool.evaluation.compare import compare_table

    runs = [("a", {"coco_AP": 40.0, "PQ": 50.0}, {}), ("b", {"coco_AP": 45.0, "PQ": 55.0}, {})]
    rows = compare_table(runs, columns=["PQ", "coco_AP"])
    assert rows["coco_AP"].tolist() == [40.0, 45.0]


def test_default_cache_dir():
    assert C.default_cache_dir("/data") == Path("/data/.panoptool_cache")
