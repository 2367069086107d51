#!/usr/bin/env bash
# The GPU check: what needs an NVIDIA GPU, in one run of at most 8 minutes, on a machine with only
# an NVIDIA driver, CUDA 13 libraries (cuBLAS, cuDNN 9, cudart, cuFFT, cuRAND: e.g. a PyTorch
# installation's nvidia/*/lib folders) and what scripts/gpu-check/prepare.sh put in .gpu-check/
# (no GStreamer, no Rust, no network). It prints:
#   * the GPU, the driver, what `iplap-engine devices` finds;
#   * the CUDA kernels: NVRTC compiling every family for this GPU, then every kernel on the GPU
#     against its host build on a 1080p frame / 577x455 face / N = 25 case (exact, 1e-6 for the
#     warp) with each step's GPU time (CUDA events, median) and the steps' sum;
#   * for fp32, tf32 and fp16: parity of the GPU renderer and landmark generator with the CPU on
#     the golden inputs and the reference formula weights (fp32/tf32 must be within 2e-4; fp16
#     reports PSNR), and which graphs each stage ran;
#   * the compositor's whole frame (1080p BGRx, I420, NV12; 577x455 face; N = 25) on the GPU:
#     each step's GPU time (CUDA events: upload, sketches, crop, networks, paste, download) and
#     the frame against the CPU compositor's (nothing outside the paste region changed, >= 40 dB);
#   * live streams (`bench live`: 1080p frames arriving at 25 fps, N = 25, fp16; one stream for 60 s,
#     then 2 and 4 at once for 20 s): frames composed, skipped, over 400 ms, latency p50/p99, CPU
#     and GPU memory per stream;
#   * `bench renderer` frames/s at N = 25 and N = 5 references for fp32, tf32 and fp16;
#   * with PyTorch there and .gpu-check/official/: the official renderer's frames/s on the same
#     GPU (scripts/gpu-check/official_renderer.py), so the speed-up is a ratio from one run.
#
#   scripts/gpu-check/prepare.sh --official IP_LAP_DIR     # on a development machine
#   bash scripts/gpu-check.sh [--device cuda] [--iterations 20]   # on the GPU machine
#
# Environment: IPLAP_CUDA_LIBS = a folder holding nvidia/*/lib (default: found through python3);
# IPLAP_NVRTC = libnvrtc.so.13 (default: beside the CUDA libraries);
# IPLAP_GPU_CHECK_DIR = what prepare.sh wrote (default .gpu-check); IPLAP_GPU_CHECK_WORK = scratch
# folder (default /tmp/iplap-gpu-check). `--device cpu` rehearses every step on the CPU (one
# iteration, 5 references) where there is no GPU.
set -Euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

device=cuda
iterations=20
while [ $# -gt 0 ]; do
  case "$1" in
    --device) device="$2"; shift 2 ;;
    --iterations) iterations="$2"; shift 2 ;;
    -h|--help) sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "gpu-check.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
refs_list=(25 5)
precisions=(fp32 tf32 fp16)
parity_args=()
if [ "$device" = cpu ]; then
  iterations=1
  refs_list=(5)
  precisions=(fp32)
  parity_args=(--target gpu) # the GPU graphs, against the CPU ones
fi

start=$(date +%s)
failures=()
step() { echo; echo "==> $* ($(( $(date +%s) - start )) s)"; }
# Runs a step with a time limit; a failure is reported and counted, the check goes on.
run() {
  local limit=$1; shift
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  if [ $rc -ne 0 ]; then
    [ $rc -eq 124 ] && echo "!! timed out after ${limit}s: $*"
    failures+=("$* (exit $rc)")
  fi
  return $rc
}

bundle="${IPLAP_GPU_CHECK_DIR:-.gpu-check}"
work="${IPLAP_GPU_CHECK_WORK:-/tmp/iplap-gpu-check}"
rm -rf "$work"
mkdir -p "$work"
if [ -f "$bundle/engine.tar.xz" ]; then
  xz -dc "$bundle/engine.tar.xz" | tar -C "$work" -xf -
elif [ -d "$bundle/engine" ]; then
  cp -a "$bundle/engine/." "$work/"
else
  echo "gpu-check.sh: no .gpu-check/engine.tar.xz: run scripts/gpu-check/prepare.sh first" >&2
  exit 1
fi
engine="$work/bin/iplap-engine"

# The CUDA libraries: the engine preloads them from nvidia/*/lib beside ONNX Runtime's folder.
cuda_libs="${IPLAP_CUDA_LIBS:-}"
if [ -z "$cuda_libs" ] && command -v python3 >/dev/null; then
  cuda_libs=$(python3 -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' \
    2>/dev/null || true)
fi
if [ -n "$cuda_libs" ] && [ -d "$cuda_libs/nvidia" ]; then
  ln -s "$cuda_libs/nvidia" "$work/nvidia"
else
  echo "note: no nvidia/*/lib folders found (set IPLAP_CUDA_LIBS); using the system's libraries"
fi
export ORT_DYLIB_PATH="$work/onnxruntime/capi/libonnxruntime.so"

step "machine"
uname -srm
command -v nvidia-smi >/dev/null &&
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv
echo "CUDA libraries: ${cuda_libs:-system}"
run 60 "$engine" devices

# NVRTC for the kernels: IPLAP_NVRTC, else the CUDA libraries' (a PyTorch installation ships
# nvidia/cu13/lib/libnvrtc.so.13), else the checkout's pinned copy (the CPU rehearsal).
if [ -z "${IPLAP_NVRTC:-}" ]; then
  for candidate in "$work"/nvidia/*/lib/libnvrtc.so.13 .venv/nvrtc/nvidia/cu13/lib/libnvrtc.so.13; do
    if [ -f "$candidate" ]; then export IPLAP_NVRTC="$candidate"; break; fi
  done
fi
echo "NVRTC: ${IPLAP_NVRTC:-left to the loader}"
if [ "$device" = cpu ]; then
  step "CUDA kernels: NVRTC compiles every family (sm_90; no GPU here, so no device check)"
  run 120 "$engine" kernels --arch sm_90 --out "$work/cubins"
else
  step "CUDA kernels: NVRTC compiles every family for this GPU"
  run 120 "$engine" kernels --arch native --out "$work/cubins"
  step "CUDA kernels on the GPU against their host build (1080p frame, 577x455 face, N = 25)"
  run 180 "$engine" kernels --check --iterations "$((iterations * 5))"
fi

step "model package (reference formula weights)"
run 180 "$engine" convert --reference-weights --out "$work/models" > "$work/convert.log" 2>&1 &&
  tail -n 1 "$work/convert.log" || cat "$work/convert.log"

if [ "$device" = cpu ]; then
  step "parity with the CPU: the fp16 GPU graphs on the cpu"
  run 120 "$engine" parity --models "$work/models" --device cpu --target gpu \
    --graph-precision fp16 --references "${refs_list[0]}"
fi
for p in "${precisions[@]}"; do
  step "parity with the CPU: $device $p"
  run 120 "$engine" parity --models "$work/models" --device "$device" --precision "$p" \
    --references "${refs_list[0]}" "${parity_args[@]}"
done

# The whole frame on the device: upload of the face region, sketches, crop, networks, warp,
# paste, YUV write-back, download; each step's GPU time, and the frame against the CPU's.
for f in bgrx i420 nv12; do
  step "compositor frame: $device, $f 1920x1080, N = ${refs_list[0]}, against the CPU compositor"
  run 180 "$engine" bench frame --models "$work/models" --device "$device" --format "$f" \
    --references "${refs_list[0]}" --iterations "$iterations" --compare-cpu
done

# Live streams: frames arriving at 25 fps, 1, 2 and 4 streams at once (fp16; 60 s for one stream,
# 20 s for several, to stay within the check's 8 minutes).
if [ "$device" = cpu ]; then
  live_runs=("1,2 --seconds 2 --fps 2")
  live_precision=fp32
else
  live_runs=("1 --seconds 60" "2,4 --seconds 20")
  live_precision=fp16
fi
for r in "${live_runs[@]}"; do
  step "live streams: $device $live_precision, N = ${refs_list[0]}, streams $r"
  # shellcheck disable=SC2086 # $r holds the stream counts and the timing arguments
  run 240 "$engine" bench live --models "$work/models" --device "$device" \
    --precision "$live_precision" --references "${refs_list[0]}" --streams $r
done

for p in "${precisions[@]}"; do
  for n in "${refs_list[@]}"; do
    step "bench renderer: $device $p, N = $n"
    run 120 "$engine" bench renderer --models "$work/models" --device "$device" --precision "$p" \
      --references "$n" --iterations "$iterations"
  done
done

if [ -d "$bundle/official" ] && python3 -c 'import torch' 2>/dev/null; then
  step "official PyTorch renderer on the same $device"
  args=()
  for n in "${refs_list[@]}"; do args+=(--references "$n"); done
  run 180 python3 scripts/gpu-check/official_renderer.py --official "$bundle/official" \
    --device "$device" --iterations "$iterations" "${args[@]}"
else
  step "official PyTorch renderer: skipped (no PyTorch or no $bundle/official)"
fi

echo
echo "==> done in $(( $(date +%s) - start )) s"
if [ ${#failures[@]} -gt 0 ]; then
  printf '!! failed: %s\n' "${failures[@]}"
  exit 1
fi
