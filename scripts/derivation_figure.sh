#!/usr/bin/env bash
# The figure of issue 14: the paper's derivation vs the seeded one (postprocess --derivation)
# on the oracle (ground-truth maps) for dilation rates 1, 2, 3, min-area off:
#
#     scripts/derivation_figure.sh [WORK=derivation-work] [TABLE=reports/derivation_oracle_1024x2048.md]
#
# Defaults: 30 synthetic val images of 1024x2048 (seed 7, the data of oracle_figure.sh) with
# postprocess's defaults. At 256x512 (30 images, seed 1000: the val split of train_figure.sh
# and the ablations) with the pixel sizes scaled as ablate does:
#
#     N=30 HEIGHT=256 WIDTH=512 SEED=1000 PP="--eps 5 --cell 1 --min-samples 6" \
#         scripts/derivation_figure.sh derivation-256 reports/derivation_oracle_256x512.md
set -euo pipefail

WORK=${1:-derivation-work}
TABLE=${2:-reports/derivation_oracle_1024x2048.md}
N=${N:-30}
HEIGHT=${HEIGHT:-1024}
WIDTH=${WIDTH:-2048}
SEED=${SEED:-7}
read -r -a PP <<< "${PP:-}"
PT=${PANOPTOOL:-panoptool}
command -v "$PT" >/dev/null || PT=.venv/bin/panoptool

[ -f "$WORK/data/synth-val.json" ] || "$PT" synth "$WORK/data" --n "$N" --height "$HEIGHT" \
    --width "$WIDTH" --seed "$SEED" --split val
runs=()
for d in 1 2 3; do
    [ -f "$WORK/targets$d/config.json" ] || "$PT" make-targets --root "$WORK/data" --split val \
        --dilation "$d" --out "$WORK/targets$d"
    for derivation in paper seeded; do
        res="$WORK/results/d${d}_$derivation"
        [ -f "$res/panoptic.json" ] || "$PT" postprocess --oracle --root "$WORK/data" \
            --targets "$WORK/targets$d" --out "$res" --min-area 0 --derivation "$derivation" \
            "${PP[@]}"
        runs+=(--compare "oracle d$d $derivation=$res")
    done
done
"$PT" report --root "$WORK/data" --split val "${runs[@]}" \
    --settings make-targets.dilation,postprocess.derivation \
    --columns PQ,PQ_th,SQ_th,RQ_th,AP,AP50 --out "$TABLE"
