#!/usr/bin/env bash
# Regenerates everything in reports/ on the synthetic data (`make reports`), about 2 hours on
# 2 CPU cores: the training figure of issue 6 (15 min), the ablation tables I-V (81 min of
# training, 9 networks of 9 minutes), the oracle figure of issue 5 (1 min) and the bench (a
# few minutes). Run it on an otherwise idle machine: training runs on a time budget, so a
# busy CPU means fewer iterations.
# Work folders go to WORK (default reports-work/); each step resumes where it stopped.
# A smoke run of the whole chain in a few minutes, into another folder:
#   N_TRAIN=20 N_VAL=4 FIG_MINUTES=0.3 BUDGET=1 REPORTS=/tmp/r BENCH_ARGS=--quick \
#       scripts/make_reports.sh /tmp/rw
set -euo pipefail

WORK=${1:-reports-work}
REPORTS=${REPORTS:-reports}
FIG_MINUTES=${FIG_MINUTES:-15}
BUDGET=${BUDGET:-81}
BENCH_ARGS=${BENCH_ARGS:-}
PT=${PANOPTOOL:-panoptool}
command -v "$PT" >/dev/null || PT=.venv/bin/panoptool
# the training figure's settings: train's cpu preset (panoptool/training/config.py PRESETS)
TRAIN_ARGS="--preset cpu"

# 1. the training figure (mIoU / PQ after 15 minutes, learning curve)
PANOPTOOL="$PT" scripts/train_figure.sh "$WORK/figure" "$FIG_MINUTES"
FIG="$REPORTS/train_figure_r18"
mkdir -p "$FIG"
cp "$WORK"/figure/reports/r18/{config.json,metrics.json,per_class.csv,summary.md} "$FIG/"
cp "$WORK/figure/figures/training_curve.png" "$FIG/"
cp "$WORK/figure/runs/r18/metrics.csv" "$FIG/training_metrics.csv"
cp "$WORK/figure/runs/r18/summary.json" "$FIG/training_summary.json"

# 2. the paper's ablations on the figure's data (300 train / 30 val images of 256x512)
"$PT" ablate --root "$WORK/figure/data" --split val --runs-dir "$WORK/ablation" \
    --reports-dir "$REPORTS" --budget-minutes "$BUDGET" --train-args "$TRAIN_ARGS"

# 3. the oracle figure of issue 5 at 1024x2048 (dilation 1/2/3, min-area off and 300)
PANOPTOOL="$PT" scripts/oracle_figure.sh "$WORK/oracle" "$REPORTS/oracle_1024x2048.md"

# 4. the speed of every stage at 1024x2048, and the report figure over 100 images
"$PT" bench --out "$REPORTS/bench.md" $BENCH_ARGS
"$PT" bench --stage report --n 100 --out "$REPORTS/bench.md" $BENCH_ARGS

# 5. the derivation figure of issue 14 (paper's vs seeded, on the oracle) at both sizes
PANOPTOOL="$PT" scripts/derivation_figure.sh "$WORK/derivation" \
    "$REPORTS/derivation_oracle_1024x2048.md"
N=30 HEIGHT=256 WIDTH=512 SEED=1000 PP="--eps 5 --cell 1 --min-samples 6" \
    PANOPTOOL="$PT" scripts/derivation_figure.sh "$WORK/derivation-256" \
    "$REPORTS/derivation_oracle_256x512.md"
