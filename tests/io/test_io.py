"""The io layer: atomic writes, clear errors, safe paths."""

import cv2
import numpy as np
import pytest

from panoptool.errors import InputError
from panoptool.io.formats import decode_offsets, panoptic_id_to_rgb, rgb_to_panoptic_id
from panoptool.io.files import atomic_path, load_npz, read_png, safe_join, write_png


def test_png_roundtrip_rgb_and_16bit(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    write_png(tmp_path / "a.png", rgb)
    assert np.array_equal(read_png(tmp_path / "a.png", dtype=np.uint8, channels=3), rgb)
    ids = np.array([[0, 26001, 65535]], dtype=np.uint16)
    write_png(tmp_path / "b.png", ids)
    assert np.array_equal(read_png(tmp_path / "b.png", dtype=np.uint16), ids)


def test_read_png_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="missing.png: file not found"):
        read_png(tmp_path / "missing.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError, match="bad.png: cannot decode"):
        read_png(tmp_path / "bad.png")
    write_png(tmp_path / "c.png", np.zeros((2, 2), np.uint16))
    with pytest.raises(InputError, match="expected dtype uint8, got uint16"):
        read_png(tmp_path / "c.png", dtype=np.uint8)


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt"]


def test_safe_join(tmp_path):
    assert safe_join(tmp_path, "masks/a.png") == (tmp_path / "masks/a.png").resolve()
    with pytest.raises(InputError, match="leaves the folder"):
        safe_join(tmp_path, "../evil.png", source=tmp_path / "x_pred.txt")
    with pytest.raises(InputError, match="absolute"):
        safe_join(tmp_path, "/etc/passwd")


def test_load_npz_corrupt(tmp_path):
    (tmp_path / "m.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="m.npz: cannot read .npz"):
        load_npz(tmp_path / "m.npz")


def test_decode_offsets_points_to_centre():
    idx = np.zeros((6, 8), np.uint16)
    idx[1:4, 2:7] = 1  # rows 1..3, cols 2..6: centroid (2, 4)
    off, valid = decode_offsets(idx, np.array([[2.0, 4.0]], np.float32))
    ys, xs = np.nonzero(valid)
    assert np.allclose(ys + off[0, ys, xs], 2.0) and np.allclose(xs + off[1, ys, xs], 4.0)
    assert (off[:, ~valid] == 0).all()


def test_panoptic_rgb_roundtrip():
    ids = np.array([[0, 26001, 7, 16777215]])
    assert np.array_equal(rgb_to_panoptic_id(panoptic_id_to_rgb(ids)), ids)
    # the postprocess writer's byte-reinterpreting version gives the same colours
    from panoptool.postprocess.runner import _panoptic_rgb
    big = np.random.default_rng(0).integers(0, 2 ** 24, (37, 53)).astype(np.int32)
    assert np.array_equal(_panoptic_rgb(big), panoptic_id_to_rgb(big))


def test_atomic_writes_get_the_usual_file_mode(tmp_path):
    import os
    write_png(tmp_path / "m.png", np.zeros((2, 2), np.uint8))
    mask = os.umask(0)
    os.umask(mask)
    assert (tmp_path / "m.png").stat().st_mode & 0o777 == 0o666 & ~mask


def test_grey_label_png_fast_decoder_matches_opencv_and_rejects_damage(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 34, (37, 53)).astype(np.uint8)
    path = tmp_path / "labels.png"
    write_png(path, labels)
    got = read_png(path, dtype=np.uint8, channels=1)
    np.testing.assert_array_equal(got, labels)
    np.testing.assert_array_equal(got, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    data = path.read_bytes()
    damaged = tmp_path / "damaged.png"
    damaged.write_bytes(data[:len(data) // 2])  # valid header, truncated data
    with pytest.raises(InputError, match="damaged.png: cannot decode image"):
        read_png(damaged)


def test_arrays_file_round_trip(tmp_path):
    from panoptool.io.files import load_arrays, save_arrays
    arrays = {"key": np.array("v2:abc"), "empty": np.zeros((0, 3), np.int32),
              "big": np.arange(1000, dtype=np.int64).reshape(10, 100),
              "flags": np.array([True, False, True]), "half": np.ones(5, np.float16),
              "fortran": np.asfortranarray(np.arange(12, dtype=np.uint16).reshape(3, 4))}
    save_arrays(tmp_path / "a.arrays", **arrays)
    back = load_arrays(tmp_path / "a.arrays", keys=tuple(arrays))
    assert list(back) == list(arrays)
    for name, arr in arrays.items():
        assert back[name].dtype == arr.dtype and np.array_equal(back[name], arr), name
    back["big"][0, 0] = 7  # writable
    with pytest.raises(InputError, match="missing array"):
        load_arrays(tmp_path / "a.arrays", keys=("nope",))
    with pytest.raises(ValueError, match="cannot be stored"):
        save_arrays(tmp_path / "b.arrays", o=np.array([object()]))
    assert not (tmp_path / "b.arrays").exists()


def _edit_header(old: bytes, new: bytes):
    """A damage that replaces text in the header and keeps its length field right."""
    def damage(data: bytes) -> bytes:
        n = int.from_bytes(data[19:23], "little")
        header = data[23:23 + n].replace(old, new)
        return data[:19] + len(header).to_bytes(4, "little") + header + data[23 + n:]
    return damage


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"not an arrays file", "bad magic"),
    (lambda b: b[:-64], "outside the file"),  # truncated data
    (_edit_header(b'"<i8"', b'"|O"'), "not allowed"),  # an object array
    (_edit_header(b'[10,100]', b'[10,-100]'), "not allowed"),
    (_edit_header(b'[10,100]', b'[100000,100000]'), "larger than the limit"),
    (_edit_header(b'[10,100]', b'[10,1000]'), "outside the file"),
    (_edit_header(b',0]]', b',-64]]'), "outside the file"),
    (lambda b: b[:19] + b"\xff\xff\x00\x00" + b[23:], "damaged arrays file"),
])
def test_damaged_arrays_file_is_refused_in_one_line(tmp_path, damage, message):
    from panoptool.io.files import load_arrays, save_arrays
    path = tmp_path / "a.arrays"
    save_arrays(path, big=np.arange(1000, dtype=np.int64).reshape(10, 100))
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(InputError, match=message) as info:
        load_arrays(path, max_elements=10 ** 6)
    assert "a.arrays" in str(info.value) and "\n" not in str(info.value)
