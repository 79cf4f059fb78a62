#!/usr/bin/env bash
# The oracle figure of issue 5: the contour method on ground-truth maps (postprocess --oracle)
# for dilation rates 1, 2, 3, at full Cityscapes size, without and with min-area 300.
# Target: PQ >= 95 and AP >= 90 at dilation 2. About a minute on 2 cores:
#
#     scripts/oracle_figure.sh [WORK=oracle-work] [TABLE=reports/oracle_1024x2048.md]
#
# (N=3 HEIGHT=256 WIDTH=512 scripts/oracle_figure.sh /tmp/o /tmp/o.md  checks the chain.)
set -euo pipefail

WORK=${1:-oracle-work}
TABLE=${2:-reports/oracle_1024x2048.md}
N=${N:-30}
HEIGHT=${HEIGHT:-1024}
WIDTH=${WIDTH:-2048}
PT=${PANOPTOOL:-panoptool}
command -v "$PT" >/dev/null || PT=.venv/bin/panoptool

[ -f "$WORK/data/synth-val.json" ] || "$PT" synth "$WORK/data" --n "$N" --height "$HEIGHT" \
    --width "$WIDTH" --seed 7 --split val
runs=()
for d in 1 2 3; do
    "$PT" make-targets --root "$WORK/data" --split val --dilation "$d" --out "$WORK/targets$d"
    # the oracle's default (min-area off), then the paper's min-area for network maps
    for area in default 300; do
        extra=(); [ "$area" = default ] || extra=(--min-area "$area")
        res="$WORK/results/d${d}_$area"
        [ -f "$res/panoptic.json" ] || "$PT" postprocess --oracle --root "$WORK/data" \
            --targets "$WORK/targets$d" --out "$res" "${extra[@]}"
        runs+=(--compare "oracle d$d min-area $area=$res")
    done
done
"$PT" report --root "$WORK/data" --split val "${runs[@]}" \
    --settings make-targets.dilation,postprocess.min_area --columns PQ,PQ_th,SQ_th,RQ_th,AP,AP50 \
    --out "$TABLE"
