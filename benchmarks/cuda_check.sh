#!/usr/bin/env bash
# The CUDA paths in one run, most needed figures first, every line also in WORKDIR/log:
#   train      `torchrun` (1 process) trains the cyclegan preset in bf16 for 2 epochs, SIGKILLed after its first
#              checkpoint and resumed: the whole `cxrds train` loop's rate, and resume after a crash;
#   translate  `cxrds translate` of RELEASE images at 256² end to end (read, generator, PNG encoding,
#              provenance); without the train stage, a 1-epoch run under torchrun gives the checkpoint;
#   build      `cxrds build` of those images;
#   bench      benchmarks/generator_speed.py at 128² and 256²: reference vs ours (batch 4 and 16), eager, compiled
#              and with CUDA graphs (compile mode reduce-overhead), in turns over 3 rounds, with MFU against a
#              measured GEMM and the datasheet, peak memory, and the `cxrds train` loop against its bare step.
#
#     [STAGES="translate bench"] [SIZES="128 256"] [BATCHES="4 16"] [STAGE_LIMIT=S] [SIZE=256] [PRECISION=bf16] bash benchmarks/cuda_check.sh WORKDIR [NORMALS] [RELEASE]
#
# NORMALS phantom normals to train on (default 1000; 70% are in training), RELEASE images to translate
# (default 21295, the size of the release). STAGES picks stages (default: all, in the order above); each stage
# is stopped after STAGE_LIMIT seconds (default: none) so that a time-limited machine still reports the rest.
set -euo pipefail
work=${1:?usage: cuda_check.sh WORKDIR [NORMALS] [RELEASE]}
normals=${2:-1000}
release=${3:-21295}
python=${PYTHON:-python3}
size=${SIZE:-256}
precision=${PRECISION:-bf16}
stages=" ${STAGES:-train translate build bench} "
limit=${STAGE_LIMIT:-0}
sizes=${SIZES:-"128 $size"}
batches=${BATCHES:-"4 16"}
mkdir -p "$work"
exec > >(tee -a "$work/log") 2>&1
export PYTHONUNBUFFERED=1

stamp() { date +%s.%N; }
took() { "$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(stamp)"; }
want() { [[ $stages == *" $1 "* ]]; }
limited() { if ((limit > 0)); then timeout --kill-after 10 "$limit" "$@"; else "$@"; fi; }

"$python" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"
echo "$(nproc) CPU cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

train_stage() {
echo "== train: prepare phantom normal:$normals,covid:$((normals / 4)) at ${size}²"
t=$(stamp)
"$python" -m cli prepare --source "phantom=normal:$normals,covid:$((normals / 4)),per_patient:1" \
    --size "$size" --out "$work/prepared" --workers "$(nproc)" >/dev/null
echo "prepare: $(took "$t")"
echo "== cyclegan preset, $precision, batch 4, 2 epochs: SIGKILLed after the first checkpoint, resumed under torchrun (1 process)"
local train=(-m cli train --prepared "$work/prepared" --task normal2covid --out "$work/run" --preset cyclegan
    --size "$size" --epochs 2 --epochs-decay 0 --batch-size 4 --precision "$precision")
t=$(stamp)
# Killed as a plain process: torchrun starts its workers in sessions of their own, out of reach of the kill.
setsid "$python" "${train[@]}" >"$work/killed.log" 2>&1 &
pid=$!
until compgen -G "$work/run/checkpoints/step-*.json" >/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$work/killed.log"; exit 1; }
    sleep 0.2
done
kill -9 -- "-$pid"
wait "$pid" || true
echo "first checkpoint after $(took "$t"): $(basename "$(compgen -G "$work/run/checkpoints/step-*.json" | tail -1)")"
t=$(stamp)
"$python" -m torch.distributed.run --standalone --nproc-per-node 1 "${train[@]}" --resume >/dev/null
echo "resumed to the end: $(took "$t")"
tail -n 3 "$work/run/log.jsonl"
}

translate_stage() {
if [[ ! -d $work/run ]]; then
    echo "== a checkpoint to translate with: cyclegan preset, $precision, 1 epoch over 32 phantom normals, torchrun (1 process)"
    t=$(stamp)
    "$python" -m cli prepare --source "phantom=normal:32,covid:8,per_patient:1" --size "$size" \
        --out "$work/prepared-small" >/dev/null
    "$python" -m torch.distributed.run --standalone --nproc-per-node 1 -m cli train --prepared "$work/prepared-small" \
        --task normal2covid --out "$work/run" --preset cyclegan --size "$size" --epochs 1 --epochs-decay 0 \
        --batch-size 4 --precision "$precision" >/dev/null
    echo "checkpoint: $(took "$t")"
fi
echo "== translate $release images at ${size}² end to end ($precision, batch 64, $(( $(nproc) > 2 ? $(nproc) - 2 : 1 )) PNG encoders)"
# A folder of distinct normal images (a class folder per label) prepared at 256²; 70% land in training.
total=$(((release * 10 + 6) / 7))
t=$(stamp)
"$python" - "$work/folder" "$total" "$size" <<'EOF'
import sys
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from cxr_dataset.imaging import encode_png
from cxr_dataset.sources.phantom import render_phantom

root, total, size = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
TEMPLATES = [render_phantom("normal", size, seed=0, patient=p, image=0) for p in range(32)]


def write(index: int) -> None:
    pixels = TEMPLATES[index % len(TEMPLATES)].copy()
    pixels[0, :32] = np.frombuffer(f"{index:032d}".encode(), np.uint8)  # distinct bytes for each image
    (root / "normal" / f"n{index:06d}.png").write_bytes(encode_png(pixels))


(root / "normal").mkdir(parents=True, exist_ok=True)
(root / "covid").mkdir(exist_ok=True)
with Pool() as pool:
    pool.map(write, range(total), chunksize=256)
for index in range(8):
    (root / "covid" / f"c{index}.png").write_bytes(encode_png(render_phantom("covid", size, seed=0, patient=index, image=0)))
EOF
echo "folder of $total PNGs: $(took "$t")"
t=$(stamp)
"$python" -m cli prepare --source "folder=$work/folder" --size "$size" --out "$work/big" --workers "$(nproc)" >/dev/null
echo "prepare: $(took "$t")"
t=$(stamp)
"$python" -m cli translate --prepared "$work/big" --checkpoint "$work/run" --out "$work/synthetic" \
    --batch-size 64 --encode-workers $(( $(nproc) > 2 ? $(nproc) - 2 : 1 )) >"$work/translate.log" 2>&1
tail -n 4 "$work/translate.log"
echo "translate: $(took "$t") for $(find "$work/synthetic/images" -name '*.png' | wc -l) images"
}

build_stage() {
echo "== build"
t=$(stamp)
"$python" -m cli build --out "$work/release/covid-synthetic-cxr" --synthetic "$work/synthetic" >/dev/null
echo "build: $(took "$t")"
}

bench_stage() {
echo "== generator throughput (benchmarks/generator_speed.py)"
# shellcheck disable=SC2086
"$python" benchmarks/generator_speed.py --sizes $sizes --batch $batches --compile default reduce-overhead --runs 3
}

for stage in train translate build bench; do
    if want "$stage"; then
        export -f "${stage}_stage" stamp took
        export work normals release python size sizes batches precision
        limited bash -c "set -euo pipefail; ${stage}_stage" || echo "== $stage stopped: exit $? (STAGE_LIMIT=$limit)"
    fi
done
