#!/usr/bin/env bash
# The CUDA paths in one run: generator throughput (bf16 vs the reference), `torchrun` training with 1 process
# (bf16, NCCL, checkpoint + resume), translation throughput with PNG encoding, build, and the classifier
# benchmark (bf16, decoding workers). Prints timings; a sizing knob for each step:
#
#     bash benchmarks/cuda_check.sh WORKDIR [NORMALS] [SIZE]
#
# NORMALS phantom normal images (default 3000; 70% are translated), SIZE pixels (default 256).
# SKIP_GENERATOR_BENCHMARK=1 leaves out the first step (when re-running after it has been measured).
set -euo pipefail
work=${1:?usage: cuda_check.sh WORKDIR [NORMALS] [SIZE]}
normals=${2:-3000}
size=${3:-256}
python=${PYTHON:-python3}
mkdir -p "$work"

stamp() { date +%s.%N; }
took() { "$python" -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f} s')" "$1" "$(stamp)"; }

"$python" -c "import torch; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA')"

if [[ -z ${SKIP_GENERATOR_BENCHMARK:-} ]]; then
    echo "== generator throughput (benchmarks/generator.py)"
    "$python" benchmarks/generator.py --sizes 128 "$size"
fi

echo "== prepare: phantom normal:$normals,covid:$((normals / 4)) at ${size}²"
t=$(stamp)
"$python" -m cli prepare --source "phantom=normal:$normals,covid:$((normals / 4)),per_patient:1" \
    --size "$size" --out "$work/prepared" --workers "$(nproc)" >/dev/null
echo "prepare: $(took "$t")"

echo "== cyclegan preset, bf16, 2 epochs: SIGKILLed after the first checkpoint, resumed under torchrun (1 process)"
train=(-m cli train --prepared "$work/prepared" --task normal2covid --out "$work/run" --preset cyclegan --size "$size"
    --epochs 2 --epochs-decay 0 --batch-size 4 --precision bf16)
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
"$python" -m torch.distributed.run --standalone --nproc-per-node 1 "${train[@]}" --resume
echo "resumed to the end: $(took "$t")"
tail -n 1 "$work/run/log.jsonl"

echo "== translate (bf16, batch 64, 8 PNG encoders)"
t=$(stamp)
"$python" -m cli translate --prepared "$work/prepared" --checkpoint "$work/run" --out "$work/synthetic" \
    --batch-size 64 --encode-workers 8
echo "translate: $(took "$t") for $(find "$work/synthetic/images" -name '*.png' | wc -l) images"

echo "== build"
t=$(stamp)
"$python" -m cli build --out "$work/release/covid-synthetic-cxr" --synthetic "$work/synthetic" >/dev/null
echo "build: $(took "$t")"

echo "== benchmark: small-cnn and resnet50 at 224², 3 epochs, normal vs covid"
t=$(stamp)
"$python" -m cli benchmark --release "$work/release/covid-synthetic-cxr" --real "$work/prepared" \
    --out "$work/benchmark" --models small-cnn,resnet50 --size 224 --epochs 3 --comparisons "normal vs covid"
echo "benchmark: $(took "$t")"
