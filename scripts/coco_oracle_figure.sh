#!/usr/bin/env bash
# The oracle figure of issue 12 on the real two-image COCO sample (../shared/data/
# coco_panoptic_sample, COCO val2017, annotations CC BY 4.0): make-targets at dilation 1, 2, 3,
# postprocess --oracle, report (PQ equal to pq_compute, COCO mask AP with pycocotools).
# min-area 44 = the paper's 300 px scaled to 640x480; the other settings at their defaults
# (meant for 1024x2048), then scaled to 640x480 (eps 7.7, min-samples 15, cell 1.5).
# A few seconds:
#
#     scripts/coco_oracle_figure.sh [WORK=coco-oracle] [TABLE=reports/coco_panoptic_oracle.md]
set -euo pipefail

WORK=${1:-coco-oracle}
TABLE=${2:-reports/coco_panoptic_oracle.md}
SAMPLE=${SAMPLE:-$(cd "$(dirname "$0")/../.." && pwd)/shared/data/coco_panoptic_sample}
PT=${PANOPTOOL:-panoptool}
command -v "$PT" >/dev/null || PT=.venv/bin/panoptool

mkdir -p "$WORK"
cat > "$WORK/sample.json" <<JSON
{"format": "coco-panoptic", "name": "coco-sample",
 "splits": {"val": {"images": "$SAMPLE/images", "panoptic_json": "$SAMPLE/panoptic_examples.json",
                    "panoptic_dir": "$SAMPLE/panoptic_examples"}}}
JSON
runs=()
for d in 1 2 3; do
    "$PT" make-targets --root "$WORK/sample.json" --split val --dilation "$d" --out "$WORK/targets$d"
    for variant in default scaled; do
        extra=(--min-area 44); [ "$variant" = default ] || extra+=(--eps 7.7 --min-samples 15 --cell 1.5)
        res="$WORK/results/d${d}_$variant"
        "$PT" postprocess --oracle --root "$WORK/sample.json" --dataset-split val \
            --targets "$WORK/targets$d" --out "$res" "${extra[@]}" --overwrite
        runs+=(--compare "oracle d$d $variant=$res")
    done
done
"$PT" report --root "$WORK/sample.json" --split val "${runs[@]}" \
    --settings make-targets.dilation,postprocess.eps \
    --columns PQ,PQ_th,PQ_st,SQ,RQ,AP,coco_AP --out "$TABLE"
