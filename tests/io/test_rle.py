"""The numpy RLE reader (panoptool.io.rle) equals pycocotools and the compiled kernels."""

from __future__ import annotations

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from panoptool.io import rle, rle_kernels


def _masks(rng, n=40):
    for i in range(n):
        h, w = rng.integers(1, 60, size=2)
        kind = i % 4
        if kind == 0:
            m = rng.random((h, w)) < rng.random()
        elif kind == 1:  # blobs: long runs, large counts
            m = np.zeros((h, w), bool)
            y0, x0 = rng.integers(0, h), rng.integers(0, w)
            m[y0:, x0:] = True
        elif kind == 2:
            m = np.ones((h, w), bool) if i % 8 == 2 else np.zeros((h, w), bool)
        else:
            m = np.zeros((h, w), bool)
            m[rng.integers(0, h), rng.integers(0, w)] = True
        yield m


def test_counts_equal_pycocotools_and_the_compiled_kernel():
    rng = np.random.default_rng(0)
    for m in list(_masks(rng)) + [np.ones((1000, 1500), bool), np.eye(700, dtype=bool)]:
        enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        chars = np.frombuffer(enc["counts"], dtype=np.uint8)
        got, ok = rle.counts_from_string(chars)
        ref, ref_ok = rle_kernels.counts_from_string(chars)
        assert ok and ref_ok
        assert np.array_equal(got, ref)
        assert got.sum() == m.size
        # the runs decode to the mask (column-major, zeros first)
        flat = np.repeat(np.arange(len(got)) % 2, got).astype(bool)
        assert np.array_equal(flat.reshape(m.shape[::-1]).T, m)


@pytest.mark.parametrize("text", [b"", b"0", b"0P", b"1o", b"\x7f\x20", b"0PYo1", b"O"])
def test_odd_strings_decode_as_the_compiled_kernel_does(text):
    chars = np.frombuffer(text, dtype=np.uint8)
    got, ok = rle.counts_from_string(chars)
    ref, ref_ok = rle_kernels.counts_from_string(chars)
    assert ok == ref_ok and np.array_equal(got, ref)


def test_segment_overlap_equals_counting_the_decoded_mask():
    rng = np.random.default_rng(1)
    for m in _masks(rng):
        seg = rng.integers(0, 7, size=m.shape).astype(np.uint16)
        enc = mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))
        runs, _ = rle.counts_from_string(np.frombuffer(enc["counts"], dtype=np.uint8))
        want = np.bincount(seg[m], minlength=7)
        assert np.array_equal(rle.masks_segment_overlap([runs], *rle.column_runs(seg), 7)[0],
                              want)
        assert np.array_equal(rle_kernels.runs_segment_overlap(runs, seg, 7), want)


def test_strings_decoded_together_equal_the_compiled_kernel_one_by_one():
    rng = np.random.default_rng(2)
    strings = [mask_utils.encode(np.asfortranarray(m.astype(np.uint8)))["counts"]
               for m in _masks(rng)]
    # odd ones among them: empty, ending inside a count, negative deltas
    strings[3:3] = [b"", b"0P", b"1o", b"\x7f\x20", b"0PYo1", b"O"]
    counts, ok = rle.counts_from_strings(strings)
    assert len(counts) == len(ok) == len(strings)
    for text, got, good in zip(strings, counts, ok):
        want, want_ok = rle_kernels.counts_from_string(np.frombuffer(text, dtype=np.uint8))
        assert good == want_ok, text
        assert np.array_equal(got, want if want_ok else want[:0]), text
    assert rle.counts_from_strings([])[0] == []


def test_overlap_of_many_masks_from_runs_equals_counting_their_pixels():
    rng = np.random.default_rng(3)
    for h, w in ((1, 1), (7, 5), (40, 33), (64, 128)):
        # a segment map of blocks and noise, and masks of every kind over it
        seg = (rng.integers(0, 4, size=(h, w)) * (rng.random((h, w)) < 0.3)
               + (np.arange(w)[None, :] * 3 // max(w, 1))).astype(np.uint16)
        n_seg = int(seg.max()) + 1
        masks = [rng.random((h, w)) < p for p in (0.0, 0.05, 0.5, 1.0)]
        masks.append(np.zeros((h, w), bool))
        masks[-1][h // 2:, w // 3:] = True
        runs = [rle.counts_from_string(mask_utils.encode(
            np.asfortranarray(m.astype(np.uint8)))["counts"])[0] for m in masks]
        got = rle.masks_segment_overlap(runs, *rle.column_runs(seg), n_seg)
        want = np.stack([np.bincount(seg[m], minlength=n_seg) for m in masks])
        assert got.dtype == np.int64
        assert np.array_equal(got, want), (h, w)
        for r, row in zip(runs, want):  # the compiled one-mask reader agrees
            assert np.array_equal(rle_kernels.runs_segment_overlap(r, seg, n_seg), row)
