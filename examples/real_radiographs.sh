#!/usr/bin/env bash
# The whole pipeline on real radiographs, timed per stage: prepare → train both generators (the seed's `paper`
# preset) → translate → build → validate → baselines (several seeds, with controls) → report.
#
#   bash examples/real_radiographs.sh IMAGEFOLDER OUT [EXTERNAL]
#
# EXTERNAL (default ../shared/cxr-within-source next to the repository, skipped when absent): another imagefolder,
# prepared whole as a test split and passed to `cxrds baselines --external`: every classifier is also scored there
# (Pneumonia vs COVID-19 with both classes from one collection). Its COVID-19 patients are partly the rehearsal's,
# so --external-drop-shared leaves out the images of patients the classifiers trained or were tuned on (counted in
# table.md).
# IMAGEFOLDER: a Hugging Face imagefolder with metadata.csv (file_name, label, patient_id, ...), e.g. the
# 848-image rehearsal sample. Settings (environment): SIZE (64), EPOCHS (20), SEEDS (0,1,2) and COVID_TRAIN
# (30): the real COVID-19 training images kept, so that generators and classifiers face the class imbalance
# the dataset is for. On a 2-core AVX2 CPU the defaults take about 30 minutes; on a GPU use SIZE=256, EPOCHS=100.
set -euo pipefail
SOURCE=${1:?usage: $0 IMAGEFOLDER OUT}
OUT=${2:?usage: $0 IMAGEFOLDER OUT [EXTERNAL]}
EXTERNAL=${3:-$(dirname "$0")/../../shared/cxr-within-source}
SIZE=${SIZE:-64}
EPOCHS=${EPOCHS:-20}
SEEDS=${SEEDS:-0,1,2}
COVID_TRAIN=${COVID_TRAIN:-30}
RELEASE=$OUT/release/covid-synthetic-cxr

mkdir -p "$OUT"
TIMES=$OUT/stage-seconds.txt
: > "$TIMES"
stage() {  # stage NAME COMMAND...: run it, append "NAME SECONDS" to stage-seconds.txt
    local name=$1 start
    shift
    start=$(date +%s.%N)
    "$@"
    echo "$name $(echo "$(date +%s.%N) - $start" | bc)" >> "$TIMES"
}

stage prepare cxrds prepare --source "imagefolder=$SOURCE" --out "$OUT/prepared" --size "$SIZE" \
    --limit-train "covid=$COVID_TRAIN"
for task in normal2covid pneumonia2covid; do
    stage "train $task" cxrds train --prepared "$OUT/prepared" --task "$task" --out "$OUT/runs/$task" \
        --preset paper --size "$SIZE" --epochs "$EPOCHS"
    stage "translate $task" cxrds translate --prepared "$OUT/prepared" --checkpoint "$OUT/runs/$task" \
        --out "$OUT/synthetic/$task"
done
stage build cxrds build --synthetic "$OUT/synthetic/normal2covid" --synthetic "$OUT/synthetic/pneumonia2covid" \
    --out "$RELEASE"
# A failed check is a finding to read, not a reason to stop the rehearsal.
stage validate cxrds validate "$RELEASE" --real "$OUT/prepared" --json "$OUT/validate.json" \
    || echo "validate: some checks failed; see $OUT/validate.json"
EXTERNAL_ARGS=()
if [ -d "$EXTERNAL" ]; then
    stage "prepare external" cxrds prepare --source "imagefolder=$EXTERNAL" --out "$OUT/external/$(basename "$EXTERNAL")" \
        --size "$SIZE" --fractions 0,0,1
    EXTERNAL_ARGS=(--external "$OUT/external/$(basename "$EXTERNAL")" --external-drop-shared)
fi
stage baselines cxrds baselines --release "$RELEASE" --real "$OUT/prepared" --out "$OUT/baselines" --seeds "$SEEDS" \
    ${EXTERNAL_ARGS[@]+"${EXTERNAL_ARGS[@]}"}
stage report cxrds report --baselines "$OUT/baselines" --release "$RELEASE" --real "$OUT/prepared" \
    --out "$OUT/report"
cat "$TIMES"
