"""The data pipeline of training: augmentation (pure) and the resumable sample stream."""

from __future__ import annotations

import pytest

from panoptool.errors import ConfigError


def _two_boxes():
    import numpy as np
    index = np.zeros((40, 60), np.uint16)
    index[5:15, 10:30] = 1
    index[20:38, 35:55] = 2
    ys, xs = np.nonzero(index == 1)
    c1 = (ys.mean(), xs.mean())
    ys, xs = np.nonzero(index == 2)
    c2 = (ys.mean(), xs.mean())
    train_ids = np.where(index > 0, 13, 0).astype(np.uint8)
    contour = np.zeros_like(train_ids)
    return {"train_ids": train_ids, "contour": contour, "instance_index": index,
            "centers_yx": np.array([c1, c2], np.float32)}


@pytest.mark.parametrize("scale, tol", [(1.0, 1e-3), (1.5, 0.5)])
def test_augmented_offsets_point_to_the_augmented_instance_centres(scale, tol):
    import numpy as np
    from scipy import ndimage

    from panoptool.training.data import Augment, augment_sample
    targets = _two_boxes()
    image = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    crop = (round(40 * scale), round(60 * scale))  # the whole scaled image: no cut instances
    flipped = set()
    for seed in range(8):
        out = augment_sample(image, targets, crop, Augment(crop=crop, scale=(scale, scale)),
                             np.random.default_rng(seed))
        sem, off, valid = out["semantic"], out["offset_yx"], out["offset_valid"]
        assert out["image"].shape == (3,) + crop and sem.shape == crop
        assert np.array_equal(valid, sem == 13) and out["pixel_valid"].all()
        components, n = ndimage.label(valid)
        assert n == 2
        for k in (1, 2):
            ys, xs = np.nonzero(components == k)
            # every pixel points to its instance's centroid
            assert np.abs(ys + off[0, ys, xs] - ys.mean()).max() <= tol
            assert np.abs(xs + off[1, ys, xs] - xs.mean()).max() <= tol
        flipped.add(bool(valid[int(10 * scale), int(15 * scale)]))  # box 1 on the left?
    assert flipped == {True, False}  # flipped and unflipped samples were both drawn


def test_stream_two_processes_see_the_global_batch_of_one():
    from panoptool.training.data import StreamBatchSampler
    one = StreamBatchSampler(5, 4, seed=3)
    r0, r1 = (StreamBatchSampler(5, 2, seed=3, rank=r, world=2) for r in (0, 1))
    for t in range(7):
        assert one.batch_at(t) == r0.batch_at(t) + r1.batch_at(t)
    # each epoch visits every image once; augmentation seeds never repeat
    stream = [one.position(p) for p in range(15)]
    for e in range(3):
        assert sorted(i for i, _ in stream[5 * e: 5 * e + 5]) == [0, 1, 2, 3, 4]
    assert len({s for _, s in stream}) == 15
    resumed = StreamBatchSampler(5, 4, seed=3, start=2)
    assert next(iter(resumed)) == one.batch_at(2)


def test_padding_of_a_shrunk_image_is_ignored():
    import numpy as np
    from panoptool.training.data import Augment, augment_sample
    from panoptool.labels import IGNORE
    targets = _two_boxes()
    targets["contour"][5, 10:30] = 1
    image = np.full((40, 60, 3), 200, np.uint8)
    out = augment_sample(image, targets, (40, 60), Augment(crop=(40, 60), scale=(0.5, 0.5),
                                                           flip=False),
                         np.random.default_rng(0))
    pad = ~out["pixel_valid"]
    assert pad.sum() == 40 * 60 - 20 * 30
    assert (out["semantic"][pad] == IGNORE).all() and not out["offset_valid"][pad].any()
    assert (out["contour"][pad] == 0).all() and (out["image"][:, pad] == 0).all()
    assert out["contour"][~pad].sum() > 0


@pytest.mark.parametrize("kwargs", [{"crop": (16, 64)}, {"crop": (64,)}, {"scale": (2.0, 1.0)},
                                    {"scale": (0.0, 1.0)}])
def test_augment_rejects_bad_settings(kwargs):
    from panoptool.training.data import Augment
    with pytest.raises(ConfigError):
        Augment(**kwargs)


def test_crop_geometry_maps_centres_like_the_pixels():
    """A pixel marked in the image lands where the geometry puts its coordinates."""
    import cv2
    import numpy as np

    from panoptool.training.data import Augment, CropGeometry
    for seed in range(6):
        g = CropGeometry.draw((40, 60), (32, 48), Augment(scale=(1.0, 1.0)),
                              np.random.default_rng(seed))
        image = np.zeros((40, 60), np.uint8)
        image[12, 17] = 1
        cropped = g.fit(g.resize(image, cv2.INTER_NEAREST), 0)
        (y, x), = np.argwhere(cropped)
        assert g.centers(np.array([[12.0, 17.0]])).tolist() == [[y, x]]
