#!/usr/bin/env bash
# Issue 16's GPU figures in one command, for a session that has a GPU (expected card: NVIDIA H100 80GB HBM3 or
# NVIDIA H200; the targets are for those cards). Run from the repository root:
#
#     bash benchmarks/gpu_suite.sh [OUT_DIR]            # default OUT_DIR: $OUT if set, else gpu_results
#
# What it runs (about 6-9 minutes on an H100; each step prints its figures and writes JSON to OUT_DIR):
#   1. the card, driver, torch and transformers versions (the expected card is named next to the one found);
#   2. bench_policy_latency.py, Qwen2.5-VL-3B-class backbone cut at layer 18, GR00T-sized flow head, bf16:
#      the matched-work matrix (1/2/3 cameras 224x224, H=16 / 4 steps and H=50 / 10 steps), eager and fast path
#      (auto: device preprocessing, SDPA, bf16, compiled backbone, the denoising loop as one CUDA graph);
#   3. the fast path step by step at the headline setting (1 camera, H=16, 4 steps): each step on its own;
#   4. bench_peer.py (LeRobot SmolVLA vs ours, SmolVLM2-500M architecture) when a LeRobot side environment is
#      there (LEROBOT_PYTHON, default /tmp/lerobot-venv/bin/python); a bare GPU box has none: it says so.
# Targets (issue 16): obs -> chunk p50 <= 12 ms, p99 <= 18 ms for the headline setting on an H100/H200.
#
# The GPU image brings torch; the project runs from src/ (no install). transformers must be 5.23.0: if the
# image has another version, carry wheels (device README: `pip download --no-deps ... -d .whl
# transformers==5.23.0 tokenizers==<its pin>`, `carry: [".whl"]`); this script installs .whl/*.whl into
# /tmp/site first when the folder exists.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT_DIR="${1:-${OUT:-gpu_results}}"
mkdir -p "$OUT_DIR"
PY="${PY:-python3}"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ]; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { echo "gpu_suite: installing .whl failed"; exit 1; }
  export PYTHONPATH="/tmp/site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD/src/vla_policy_node:$PWD:${PYTHONPATH:-}"
LOG="$OUT_DIR/gpu_suite.log"
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }

say "== 1. machine (expected card: NVIDIA H100 80GB HBM3 or NVIDIA H200)"
"$PY" - <<'EOF' 2>&1 | tee -a "$LOG"
import subprocess, sys, torch, transformers
if not torch.cuda.is_available():
    sys.exit("gpu_suite: torch sees no CUDA device; this suite needs a GPU")
p = torch.cuda.get_device_properties(0)
print(f"card: {p.name}, {p.total_memory / 2**30:.0f} GiB, {p.multi_processor_count} SMs; torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}; transformers {transformers.__version__}")
if transformers.__version__ != "5.23.0":
    print("WARNING: the project pins transformers 5.23.0; carry its wheels (see this script's header)")
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=driver_version,clocks.max.sm", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=20).stdout.strip())
except Exception as error:
    print(f"nvidia-smi: {error}")
EOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

BENCH=(benchmarks/bench_policy_latency.py --size qwen2.5-vl-3b --device cuda --select-layer 18)

say "== 2. matched-work matrix, eager and fast path (auto)"
"$PY" "${BENCH[@]}" --matrix --fast-path auto --runs 50 --warmup 5 --json "$OUT_DIR/latency_matrix.json" 2>&1 \
  | grep -v -i warn | tee -a "$LOG"

say "== 3. the fast path one step at a time (1 camera 224x224, H=16, 4 steps)"
run_step() {  # name, flags...
  local name=$1; shift
  say "-- $name"
  "$PY" "${BENCH[@]}" --cameras 1 --horizon 16 --steps 4 --runs 50 --warmup 5 "$@" \
    --json "$OUT_DIR/step_$name.json" 2>&1 | grep -v -i warn | tee -a "$LOG"
}
run_step eager --fast-path off
run_step device_preprocess --fast-path off --device-preprocess
run_step sdpa --fast-path off --attention sdpa
run_step compile_backbone --fast-path off --attention sdpa --compile-backbone
run_step cuda_graph_head --fast-path off --attention sdpa --capture-head reduce-overhead
run_step all --fast-path auto

say "== 4. LeRobot SmolVLA vs ours (SmolVLM2-500M architecture, H=50, 10 steps, 2 cameras)"
LEROBOT_PYTHON="${LEROBOT_PYTHON:-/tmp/lerobot-venv/bin/python}"
if [ -x "$LEROBOT_PYTHON" ]; then
  "$PY" benchmarks/bench_peer.py --lerobot-python "$LEROBOT_PYTHON" ${LEROBOT_PYTHONPATH:+--lerobot-pythonpath "$LEROBOT_PYTHONPATH"} \
    --size 500m --device cuda --runs 20 --warmup 3 --threads 0 --json "$OUT_DIR/peer.json" 2>&1 \
    | grep -v -i warn | tee -a "$LOG"
else
  say "skipped: no LeRobot side environment at $LEROBOT_PYTHON (lerobot 0.6.1 needs Python >= 3.12, its own torch,"
  say "transformers >=5.4,<5.6 and num2words; a bare GPU box has no network to install them: carry them as wheels)"
fi
say "done; figures in $OUT_DIR (targets: 1 camera H16/4 steps p50 <= 12 ms, p99 <= 18 ms)"
