#!/usr/bin/env bash
# The GPU check of issue 15, one script, at most 8 minutes on one H100/H200, writing gpu-check.json:
#   1. a 7B-width, 4-layer Vicuna and a CLIP-L-width tower (4 layers) written in the published folder
#      layouts (tests/published_models.py: .bin shards in float16, a full CLIPModel checkpoint);
#   2. 20 stage-2 steps of the 7B recipe (llava15_7b_stage2.yaml) from a built mix, with DeepSpeed
#      ZeRO-3 (built partitioned) and ZeRO-2, padded and packed: tokens/s, MFU, losses, per-rank parameters;
#   3. `python -m trainer export` of the ZeRO-3 padded run, reloaded in bf16, logits compared with the
#      run's final model (benchmarks/gpu_check_report.py);
#   4. benchmarks/bench_train_step.py in every mode at Vicuna-7B width (4 layers).
#
# Here (with the project venv and PyPI):  PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --prepare
#   -> .whl/ (git-ignored): DeepSpeed built as a wheel + the packages the lent GPU machine lacks (cp312
#      manylinux, the versions of this venv; benchmarks/README.md#offline-gpu), and .whl/mix, the tiny synthetic mix
#      (built with datamix, whose polars & co. the GPU machine lacks). About 8 MB in all.
# On the GPU machine (run tool, carry [".whl"]):  bash benchmarks/gpu_check.sh --out "$OUT/gpu-check.json"
#   -> installs .whl/*.whl with --no-index --no-deps into WORK/site, runs the check, prints a table.
# Dry run on a CPU, tiny widths, end to end:  PYTHON=.venv/bin/python bash benchmarks/gpu_check.sh --dry
#
# Options: --dry, --prepare, --mix DIR (default .whl/mix, else WORK/mix, built if absent), --work DIR
# (default ${TMPDIR:-/tmp}/datamix-gpu-check), --out FILE (gpu-check.json), --steps N (20; dry 4),
# --budget SECONDS (420, then about 30 s of report; a phase that would start later is skipped and
# reported so). Each phase's log: WORK/logs/<phase>.log; WORK/phases.tsv: its seconds and exit code.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=${PYTHON:-python3}
DRY=0; PREPARE=0; MIX=""; WORK=${TMPDIR:-/tmp}/datamix-gpu-check; OUT=gpu-check.json; STEPS=""; BUDGET=420
while [ $# -gt 0 ]; do
  case "$1" in
    --dry) DRY=1 ;;
    --prepare) PREPARE=1 ;;
    --mix) MIX=$2; shift ;;
    --work) WORK=$2; shift ;;
    --out) OUT=$2; shift ;;
    --steps) STEPS=$2; shift ;;
    --budget) BUDGET=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$WORK/logs"
WORK=$(cd "$WORK" && pwd)
if [ -z "$MIX" ]; then
  if [ "$PREPARE" = 1 ] || [ -f .whl/mix/manifest.parquet ]; then MIX=$ROOT/.whl/mix; else MIX=$WORK/mix; fi
fi
START=$(date +%s)

# the every_source recipe over `datamix synth --scale tiny`, 24 samples per shard (as tests/):
#   "$PY" -c "$MIX_PY" MIX_DIR RAW_ROOT
MIX_PY='
import sys
from pathlib import Path
from datamix.build import build
from datamix.normalize import normalize
from datamix.synth import synth
out, root = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
root.mkdir(parents=True, exist_ok=True)
synth(root, scale="tiny", seed=0)
normalize(root=root)
recipe = Path("tests/fixtures/recipes/every_source.yaml").read_text().replace("max_samples: 256", "max_samples: 24")
(root / "every_source.yaml").write_text(recipe)
build(root / "every_source.yaml", root, out=out)
print(f"mix: {out}")
'

if [ "$PREPARE" = 1 ]; then
  mkdir -p .whl
  version() { "$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1"; }
  pkgs=()
  for p in pydantic pydantic-core annotated-types typing-inspection hjson; do
    pkgs+=("$p==$(version "$p")")
  done
  set -e
  [ -n "$(ls .whl/deepspeed-*.whl 2>/dev/null)" ] || "$PY" -m pip wheel -q --no-deps "deepspeed==$(version deepspeed)" -w .whl
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl "${pkgs[@]}"
  [ -f "$MIX/manifest.parquet" ] || "$PY" -c "$MIX_PY" "$MIX" "$WORK/mix-root" > "$WORK/logs/mix.log" 2>&1
  set +e
  du -sh .whl "$MIX"; ls .whl
  echo "prepared: carry [\".whl\"]; run: bash benchmarks/gpu_check.sh --out \"\$OUT/gpu-check.json\""
  exit 0
fi

# the wheels of what the GPU machine lacks (benchmarks/README.md#offline-gpu): --no-index, --no-deps, into a folder of our own;
# a package the machine has already (pyarrow, sentencepiece, protobuf may be there) keeps its own version
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "$(ls .whl/*.whl 2>/dev/null)" ] && [ "$DRY" = 0 ]; then
  mapfile -t WHEELS < <("$PY" - .whl/*.whl <<'EOF'
import importlib.util, sys
from pathlib import Path
module = {"pydantic_core": "pydantic_core", "py_cpuinfo": "cpuinfo", "protobuf": "google.protobuf"}
for wheel in sys.argv[1:]:
    dist = Path(wheel).name.split("-")[0]
    name = module.get(dist, dist)
    try:
        present = importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        present = False
    if not present:
        print(wheel)
EOF
)
  if [ ${#WHEELS[@]} -gt 0 ]; then
    echo "installing from .whl: ${WHEELS[*]##*/}"
    "$PY" -m pip install -q --no-index --no-deps --target "$WORK/site" "${WHEELS[@]}" > "$WORK/logs/wheels.log" 2>&1 \
      || { echo "wheel install failed:"; tail -5 "$WORK/logs/wheels.log"; }
  fi
  export PYTHONPATH="$WORK/site:$PYTHONPATH"
fi
"$PY" - <<'EOF' || exit 2
import importlib.util, sys
need = ["torch", "transformers", "deepspeed", "pydantic", "yaml", "numpy", "PIL", "pyarrow", "safetensors",
        "tokenizers", "sentencepiece", "google.protobuf", "hjson"]
missing = []
for m in need:
    try:
        if importlib.util.find_spec(m) is None:
            missing.append(m)
    except ModuleNotFoundError:
        missing.append(m)
if missing:
    sys.exit(f"gpu_check.sh: missing {missing}; prepare wheels here with `bash benchmarks/gpu_check.sh --prepare` and carry .whl")
EOF
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-8} PYTHONWARNINGS=ignore TOKENIZERS_PARALLELISM=false
rm -f "$WORK/phases.tsv"

if [ "$DRY" = 1 ]; then
  STEPS=${STEPS:-4}; BATCH=4; WORKERS=0; IMAGE=56
  BENCH=(--smoke --samples 8 --batch 4)
  SIZES=(--width 64 --layers 2 --heads 4 --intermediate 128 --image-size 56 --vision-width 32 --vision-layers 3
         --vision-heads 2 --vision-intermediate 64)
  export OMP_NUM_THREADS=1
else
  STEPS=${STEPS:-20}; BATCH=8; WORKERS=4; IMAGE=336
  BENCH=(--layers 4 --vision-layers 3 --samples 48 --batch 8)
  SIZES=(--width 4096 --layers 4 --heads 32 --intermediate 11008 --image-size 336 --vision-width 1024
         --vision-layers 4 --vision-heads 16 --vision-intermediate 4096)
fi

phase() {  # phase NAME TIMEOUT CMD...: run under a timeout unless the budget is spent; record seconds and rc
  local name=$1 limit=$2; shift 2
  local now; now=$(date +%s)
  if [ $((now - START + 10)) -ge "$BUDGET" ]; then
    printf '%s\t0\t125\n' "$name" >> "$WORK/phases.tsv"; echo "[$name] skipped: budget of ${BUDGET}s spent"; return 125
  fi
  local left=$((BUDGET - (now - START)))
  [ "$limit" -gt "$left" ] && limit=$left
  local t0; t0=$(date +%s.%N)
  timeout --kill-after=10 "$limit" "$@" > "$WORK/logs/$name.log" 2>&1
  local rc=$?
  local secs; secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
  printf '%s\t%s\t%s\n' "$name" "$secs" "$rc" >> "$WORK/phases.tsv"
  echo "[$name] rc $rc, ${secs}s"; [ "$rc" = 0 ] || tail -5 "$WORK/logs/$name.log"
  return $rc
}

rm -f "$WORK/bench.json"
rm -rf "$WORK/published"
phase published 120 "$PY" tests/published_models.py "$WORK/published" "${SIZES[@]}"
if [ ! -f "$MIX/manifest.parquet" ]; then
  phase mix 120 "$PY" -c "$MIX_PY" "$MIX" "$WORK/mix-root"
fi
LLM=$WORK/published/lmsys/vicuna-7b-v1.5
TOWER=$WORK/published/openai/clip-vit-large-patch14-336
rm -rf "$WORK/runs" "$WORK/export"
for zero in 3 2; do
  for packing in false true; do
    name=z${zero}_$([ $packing = true ] && echo packed || echo padded)
    phase "train_$name" 150 "$PY" -m trainer train --config recipes/train/llava15_7b_stage2.yaml \
      --set "model.llm=$LLM" --set "model.vision_tower=$TOWER" --set "model.image_size=$IMAGE" \
      --set "data.mix=$MIX" --set "output_dir=$WORK/runs/$name" --set pretrained_projector=null \
      --set "zero_stage=$zero" --set "packing=$packing" --set "global_batch_size=$BATCH" \
      --set "per_device_batch_size=$BATCH" --set "max_steps=$STEPS" --set max_length=2048 \
      --set "data.num_workers=$WORKERS" --set data.shuffle_buffer=64 --set checkpoint_at_end=false \
      --set save_steps=100000 --set logging_steps=1
    if [ "$name" = z3_padded ]; then
      phase export 90 "$PY" -m trainer export --checkpoint "$WORK/runs/z3_padded/final" --out "$WORK/export"
    fi
  done
done
# last: it was measured before (benchmarks/README.md#offline-gpu); the training runs above are what is new
phase bench 180 "$PY" benchmarks/bench_train_step.py "${BENCH[@]}" --out "$WORK/bench.json"
REPORT=(--work "$WORK" --out "$OUT" --image-size "$IMAGE")
[ "$DRY" = 1 ] && REPORT+=(--dry --skip-steps 1)
# the report runs whatever the budget says (about 30 s on the GPU)
timeout 90 "$PY" benchmarks/gpu_check_report.py "${REPORT[@]}" 2>&1 | tee "$WORK/logs/report.log" | grep -v "^Loading weights"
echo "wrote $OUT in $(( $(date +%s) - START ))s"
