#!/usr/bin/env bash
# Prepares what scripts/gpu-check.sh carries to a GPU machine, in .gpu-check/ (git-ignored):
#
#   engine.tar.xz   iplap-engine (the engine without GStreamer, stripped) and the ONNX Runtime GPU
#                   libraries: the core, the shared-provider glue and the CUDA provider with the
#                   device code of every architecture but the kept ones zeroed (trim_fatbin.py;
#                   as shipped, the provider alone is 271 MB).
#   official/       the official IP_LAP files the PyTorch renderer needs (official_renderer.py),
#                   when --official names a checkout or a bare git repository of it.
#
#   scripts/gpu-check/prepare.sh [--official DIR] [--arch sm_90] [--no-pack]
#
# Needs a built checkout with the GPU runtime (scripts/setup.sh --gpu). --arch (repeatable; default
# sm_90: H100/H200) picks the GPU architectures whose code is kept. --no-pack leaves the files
# unpacked in .gpu-check/engine/ (a rehearsal on this machine; too large to carry). Everything in
# .gpu-check/ must stay within the 64 MiB a GPU machine takes; the script says how much it is.
# Environment: IPLAP_GPU_CHECK_DIR = the output folder (default .gpu-check);
# IPLAP_SKIP_BUILD=1 uses target/release/iplap-engine as built (the test suite, inside cargo).
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

official=""
archs=()
pack=1
while [ $# -gt 0 ]; do
  case "$1" in
    --official) official="$2"; shift 2 ;;
    --arch) archs+=("$2"); shift 2 ;;
    --no-pack) pack=0; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "prepare.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#archs[@]} -gt 0 ] || archs=(sm_90)

# The official files official_renderer.py imports (its docstring lists them).
OFFICIAL_FILES=(models/video_renderer.py)

capi=.venv/gpu/onnxruntime/capi
if [ ! -f "$capi/libonnxruntime_providers_cuda.so" ]; then
  echo "prepare.sh: no GPU build of ONNX Runtime in $capi: run scripts/setup.sh --gpu first" >&2
  exit 1
fi
core=$(cd "$capi" && ls libonnxruntime.so.1.* | head -n 1)

if [ "${IPLAP_SKIP_BUILD:-0}" != 1 ]; then
  echo "==> building iplap-engine"
  cargo build --release --locked -p iplap --features cli --bin iplap-engine
fi

out="${IPLAP_GPU_CHECK_DIR:-.gpu-check}"
rm -rf "$out"
mkdir -p "$out/engine/bin" "$out/engine/onnxruntime/capi"
strip -o "$out/engine/bin/iplap-engine" target/release/iplap-engine
cp "$capi/$core" "$capi/libonnxruntime_providers_shared.so" "$out/engine/onnxruntime/capi/"
ln -s "$core" "$out/engine/onnxruntime/capi/libonnxruntime.so"
keep=()
for a in "${archs[@]}"; do keep+=(--keep "$a"); done
echo "==> trimming the CUDA provider to ${archs[*]}"
python3 scripts/gpu-check/trim_fatbin.py "$capi/libonnxruntime_providers_cuda.so" \
  "$out/engine/onnxruntime/capi/libonnxruntime_providers_cuda.so" --compact "${keep[@]}"

if [ -n "$official" ]; then
  echo "==> official IP_LAP files from $official"
  for f in "${OFFICIAL_FILES[@]}"; do
    mkdir -p "$out/official/$(dirname "$f")"
    if [ -f "$official/$f" ]; then
      cp "$official/$f" "$out/official/$f"
    else
      git --git-dir="$official" show "HEAD:$f" > "$out/official/$f"
    fi
  done
fi

if [ "$pack" = 1 ]; then
  echo "==> packing (xz -9, a few minutes)"
  tar -C "$out/engine" -cf - . | xz -9 -T1 > "$out/engine.tar.xz"
  rm -rf "$out/engine"
fi
size=$(du -sb "$out" | cut -f1)
echo "==> $out: $((size / 1048576)) MiB (a GPU machine takes 64 MiB with the working tree)"
