#!/usr/bin/env bash
# The Mv2ID model path on ONE GPU (H100 80GB or H200) with a Wan 2.1 14B-shaped model (random weights; the
# shapes of Phantom-Wan 14B and Wan 2.2 A14B) at 832x480, 81 frames, 3 references: s/step and peak GiB per
# step kind and configuration, once with bf16 weights and once with fp8 (e4m3fn) weights, and the model
# passes each configuration needs per video. Writes <out>/bench_14b_bf16.json, bench_14b_fp8.json and
# bench_14b.log. The weights are made on the GPU in memory (no 28 GB file); no network is needed.
#
#   python3 tools/setup_host.py newest           # first, once (installs the pinned host)
#   bash bench/gpu_14b.sh [out_dir]              # out_dir defaults to $OUT, else out/bench_14b (about 6-9 min)
#   bash bench/gpu_14b.sh --tiny [out_dir]       # the same steps with the tiny model on a CPU (a check)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
tiny=0
if [[ "${1:-}" == "--tiny" ]]; then tiny=1; shift; fi
out="${1:-${OUT:-$ROOT/out/bench_14b}}"
mkdir -p "$out"
set -a
# shellcheck disable=SC1091
source "${MV2ID_HOST_DIR:-$ROOT/.host}/newest/env.sh"
set +a
# each step kind is warmed up with one step, then timed over one step (GPU timings vary little); the 1-, 2-
# and 3-pass kinds are what every configuration is made of (plain T2V and the kind without RD-RoPE are left
# to the 1.3B run); passes per video are counted with the tiny model at the same size (seconds on a GPU)
common=(--steps 1 --rounds 1 --kinds phantom3,mv2id3,mv2id2,mv2id1 --no-direct --refs 3)
if [[ $tiny == 1 ]]; then
  size=(--preset tiny --in-memory --width 160 --height 96 --length 9)
  limit=900
else
  size=(--preset 14b --width 832 --height 480 --length 81)
  limit=290
fi
rc=0
for dtype in bfloat16 fp8_e4m3fn; do
  tag=$([[ $dtype == bfloat16 ]] && echo bf16 || echo fp8)
  echo "=== $tag ===" | tee -a "$out/bench_14b.log"
  timeout "$limit" "$MV2ID_PYTHON" bench/bench_model_path.py "${size[@]}" "${common[@]}" --dtype "$dtype" \
    --models "$out/models" --json "$out/bench_14b_$tag.json" 2>&1 | tee -a "$out/bench_14b.log" || rc=1
done
rm -rf "$out/models"
exit $rc
