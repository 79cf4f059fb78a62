"""``panoptic.json`` is written entry by entry, with the bytes of one ``json.dump``."""

import json

import pytest

from panoptool.io import formats
from panoptool.io.files import write_json
from panoptool.postprocess.panoptic import coco_categories
from panoptool.postprocess.runner import assemble_panoptic_json, sidecar_path


def _whole_object(stems, sidecars):
    """What the file held when it was built as one object and dumped at once."""
    images = [{"id": s, "file_name": f"{s}_leftImg8bit.png", "width": sidecars[s].get("width"),
               "height": sidecars[s].get("height")} for s in stems]
    annotations = [{"image_id": sidecars[s]["image_id"], "file_name": sidecars[s]["file_name"],
                    "segments_info": sidecars[s]["segments_info"]} for s in stems]
    data = {"images": images, "annotations": annotations, "categories": coco_categories()}
    return (json.dumps(data) + "\n").encode("utf-8")


@pytest.mark.parametrize("n", [0, 1, 3])
def test_streamed_json_equals_one_dump(tmp_path, n):
    stems = [f"city_{k:06d}_000019" for k in range(n)]
    sidecars = {}
    for k, stem in enumerate(stems):
        sidecars[stem] = {"image_id": stem, "file_name": f"{stem}_panoptic.png",
                          "width": 256, "height": 128 + k,
                          "segments_info": [{"id": 26000 + j, "category_id": 26, "area": 10 * j,
                                             "bbox": [j, 0, 3, 4], "iscrowd": 0}
                                            for j in range(k + 1)]}
        if k == 1:
            del sidecars[stem]["width"]  # a missing size stays null, as before
        write_json(sidecar_path(tmp_path, stem), sidecars[stem], indent=None)
    assemble_panoptic_json(tmp_path, stems)
    path = formats.panoptic_json_path(tmp_path)
    assert path.read_bytes() == _whole_object(stems, sidecars)
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp")]
