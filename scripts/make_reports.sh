#!/usr/bin/env bash
# Regenerates everything in reports/ on the synthetic data (`make reports`), about 2 hours on
# 2 CPU cores: the training figure of issue 6 (15 min), the ablation tables I-V (81 min of
# training, 9 networks of 9 minutes) and the bench (a few minutes). Run it on an otherwise
# idle machine: training runs on a time budget, so a busy CPU means fewer iterations.
# Work folders go to WORK (default reports-work/); each step resumes where it stopped.
set -euo pipefail

WORK=${1:-reports-work}
PT=${PANOPTOOL:-panoptool}
command -v "$PT" >/dev/null || PT=.venv/bin/panoptool
TRAIN_ARGS="--batch 2 --crop 256x256 --scale 0.75,1.25 --lr 0.01 --semantic-top-k 0.25 --workers 1"

# 1. the training figure (mIoU / PQ after 15 minutes, learning curve)
scripts/train_figure.sh "$WORK/figure" 15
mkdir -p reports/train_figure_r18
cp "$WORK"/figure/reports/r18/{config.json,metrics.json,per_class.csv,summary.md} reports/train_figure_r18/
cp "$WORK/figure/figures/training_curve.png" reports/train_figure_r18/
cp "$WORK/figure/runs/r18/metrics.csv" reports/train_figure_r18/training_metrics.csv
cp "$WORK/figure/runs/r18/summary.json" reports/train_figure_r18/training_summary.json

# 2. the paper's ablations on the figure's data (300 train / 30 val images of 256x512)
"$PT" ablate --root "$WORK/figure/data" --split val --runs-dir "$WORK/ablation" \
    --reports-dir reports --budget-minutes 81 --train-args "$TRAIN_ARGS"

# 3. the speed of every stage at 1024x2048, and the report figure over 100 images
"$PT" bench
"$PT" bench --stage report --n 100
