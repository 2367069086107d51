#!/usr/bin/env bash
# iplap — the one set-up command (fresh Debian 12 machine). Idempotent: safe to rerun; finished
# steps are checked and skipped.
#
#   scripts/setup.sh            set everything up and build the release binaries and plugin
#   scripts/setup.sh --quiet    the same, printing only failures (used by scripts/test.sh)
#   scripts/setup.sh --install [PREFIX]
#                               the same, then install the plugin, the CLI, ONNX Runtime and the
#                               face models (scripts/install.sh): system-wide without PREFIX (root),
#                               into PREFIX/{lib/gstreamer-1.0,bin,share/iplap} with one
#   scripts/setup.sh --install --user
#                               the same for this user only (~/.local, found by GStreamer as is)
#   scripts/setup.sh --gpu      also install the NVIDIA GPU runtime (below) even without a driver
#   scripts/setup.sh --cpu      never install it (default: installed when libcuda.so.1 loads)
#
# Steps:
#   1. apt packages: GStreamer 1.22 (dev, tools, base/good/bad/ugly/libav plugins), pkg-config, python3-venv
#   2. Python venv for model preparation at .venv/ (git-ignored) with the pinned onnxruntime wheel,
#      and NVIDIA's runtime compiler for the CUDA kernels (nvidia-cuda-nvrtc 13.0) at .venv/nvrtc/
#      GPU runtime (NVIDIA driver present, or --gpu): onnxruntime-gpu (same version; runs CPU
#      sessions too), NVIDIA's CUDA 13.0 runtime wheels (cudart, cuBLAS, cuDNN 9, cuFFT, cuRAND)
#      and the TensorRT-RTX provider, into .venv/gpu/ (~3 GB; the engine preloads them itself)
#   3. libonnxruntime.so linked to .venv/ort/ where the engine finds it (ORT_DYLIB_PATH still overrides)
#   4. cargo build --release: the `iplap` CLI and the GStreamer plugin libgstiplap.so
#   5. MediaPipe face models: the pinned mediapipe==0.10.21 wheel (downloaded, not installed) converted
#      to ONNX by our own converter into models/generated/face/
#   6. check that GStreamer loads the plugin
#   7. (--install) scripts/install.sh
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

ONNXRUNTIME_VERSION="1.31.1" # ort =2.0.0-rc.15 speaks the ONNX Runtime 1.31 API
MEDIAPIPE_VERSION="0.10.21"   # the last wheel with the legacy face detector + attention mesh
VENV="$ROOT/.venv"
# The GPU runtime, pinned to the CUDA 13.0 series (the oldest driver that runs it: 580).
GPU_WHEELS=(
  "onnxruntime-gpu==$ONNXRUNTIME_VERSION"
  "nvidia-cuda-runtime==13.0.96"
  "nvidia-cublas==13.0.2.14"
  "nvidia-nvjitlink==13.0.88"
  "nvidia-cudnn-cu13==9.13.1.26"
  "nvidia-cufft==12.0.0.61"
  "nvidia-curand==10.4.0.35"
  "onnxruntime-ep-nv-tensorrt-rtx-cu13==0.5.0"
)
GPU=auto
QUIET=0
INSTALL=0
INSTALL_ARGS=()
for arg in "$@"; do
  case "$arg" in
    --quiet | -q) QUIET=1 ;;
    --install) INSTALL=1 ;;
    --gpu) GPU=yes ;;
    --cpu) GPU=no ;;
    --user) INSTALL_ARGS+=(--user) ;;
    -h | --help)
      sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "setup.sh: unknown argument '$arg' (try --help)" >&2
      exit 2
      ;;
    *)
      if [ "$INSTALL" = 1 ] && [ "${#INSTALL_ARGS[@]}" = 0 ]; then
        INSTALL_ARGS+=("$arg")
      else
        echo "setup.sh: unexpected argument '$arg' (a PREFIX goes right after --install)" >&2
        exit 2
      fi
      ;;
  esac
done
if [ "$INSTALL" = 0 ] && [ "${#INSTALL_ARGS[@]}" != 0 ]; then
  echo "setup.sh: --user needs --install" >&2
  exit 2
fi

STEP="starting"
LOG="$(mktemp -t iplap-setup.XXXXXX)"
trap 'rm -f "$LOG"' EXIT
on_error() {
  echo "" >&2
  echo "setup.sh: FAILED at step: $STEP" >&2
  if [ -s "$LOG" ]; then
    echo "---- last output of that step ----" >&2
    tail -n 40 "$LOG" >&2
    echo "----------------------------------" >&2
  fi
  echo "What to do: $HINT" >&2
  exit 1
}
trap on_error ERR
HINT="read the output above"

say() { if [ "$QUIET" = 0 ]; then echo "==> $*"; fi; }
# Runs a command, keeping its output in $LOG (shown on failure) unless not quiet.
run() {
  if [ "$QUIET" = 1 ]; then
    "$@" >"$LOG" 2>&1
  else
    "$@" 2>&1 | tee "$LOG"
  fi
}

# ---------------------------------------------------------------------------------------------
STEP="1/6 system packages (apt)"
HINT="run as root (or with sudo available) on Debian 12 with network access to the Debian mirrors; then rerun scripts/setup.sh"
APT_PACKAGES=(
  pkg-config
  libgstreamer1.0-dev libgstreamer-plugins-base1.0-dev libgstreamer-plugins-bad1.0-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
)
# python3-venv only where the interpreter cannot make a venv with pip by itself.
if ! python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
  APT_PACKAGES+=(python3 python3-venv)
fi
missing=()
for p in "${APT_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done
if [ "${#missing[@]}" -gt 0 ]; then
  say "installing apt packages: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then
    command -v sudo >/dev/null || { echo "need root or sudo to install: ${missing[*]}" >"$LOG"; false; }
    SUDO="sudo"
  fi
  run $SUDO apt-get update -q
  run env DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  say "apt packages present"
fi

# ---------------------------------------------------------------------------------------------
STEP="2/6 Python venv with onnxruntime==$ONNXRUNTIME_VERSION"
HINT="check that python3 (3.10-3.13) works and PyPI is reachable; delete .venv/ and rerun scripts/setup.sh"
if [ ! -x "$VENV/bin/python" ]; then
  say "creating the Python venv at .venv/"
  run python3 -m venv "$VENV"
fi
have_ort="$("$VENV/bin/python" -c 'import onnxruntime; print(onnxruntime.__version__)' 2>/dev/null || true)"
if [ "$have_ort" != "$ONNXRUNTIME_VERSION" ]; then
  say "installing onnxruntime==$ONNXRUNTIME_VERSION into .venv/"
  run "$VENV/bin/python" -m pip install --disable-pip-version-check -q "onnxruntime==$ONNXRUNTIME_VERSION"
else
  say "onnxruntime $have_ort present in .venv/"
fi

# NVRTC, for the CUDA kernels: always (CI compiles every kernel with it; no GPU needed). Pinned to
# 13.0: a newer NVRTC's code is not loadable by the 580 driver that CUDA 13.0 needs.
NVRTC_WHEEL="nvidia-cuda-nvrtc==13.0.88"
NVRTC_DIR="$VENV/nvrtc"
if [ "$(cat "$NVRTC_DIR/.installed" 2>/dev/null)" != "$NVRTC_WHEEL" ]; then
  say "installing NVRTC ($NVRTC_WHEEL) into .venv/nvrtc/"
  rm -rf "$NVRTC_DIR"
  run "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
    --target "$NVRTC_DIR" "$NVRTC_WHEEL"
  echo "$NVRTC_WHEEL" >"$NVRTC_DIR/.installed"
else
  say "NVRTC present in .venv/nvrtc/"
fi

if [ "$GPU" = auto ]; then
  # The driver is what a GPU run needs from the system; everything else comes from pip.
  if "$VENV/bin/python" -c 'import ctypes; ctypes.CDLL("libcuda.so.1")' 2>/dev/null; then
    GPU=yes
  else
    GPU=no
  fi
fi
GPU_DIR="$VENV/gpu"
GPU_STAMP="$GPU_DIR/.installed"
if [ "$GPU" = yes ]; then
  STEP="2/6 GPU runtime (onnxruntime-gpu, CUDA 13.0 wheels, TensorRT-RTX provider) into .venv/gpu/"
  HINT="PyPI must be reachable (about 3 GB); rerun with --cpu to skip the GPU runtime"
  if [ "$(cat "$GPU_STAMP" 2>/dev/null)" != "${GPU_WHEELS[*]}" ]; then
    say "installing the GPU runtime into .venv/gpu/ (about 3 GB unpacked)"
    rm -rf "$GPU_DIR"
    # --target keeps it apart from the CPU wheel (both are the `onnxruntime` package);
    # --no-deps: only the libraries are used, not the Python modules.
    run "$VENV/bin/python" -m pip install --disable-pip-version-check -q --no-deps \
      --target "$GPU_DIR" "${GPU_WHEELS[@]}"
    echo "${GPU_WHEELS[*]}" >"$GPU_STAMP"
  else
    say "GPU runtime present in .venv/gpu/"
  fi
fi

# ---------------------------------------------------------------------------------------------
STEP="3/6 link libonnxruntime.so for the engine"
HINT="the onnxruntime wheel should contain onnxruntime/capi/libonnxruntime.so.*; delete .venv/ and rerun scripts/setup.sh"
if [ -f "$GPU_STAMP" ] && [ "$GPU" = yes ]; then
  # The GPU build: same version, runs CPU sessions as well, and has the CUDA/TensorRT providers.
  capi="$GPU_DIR/onnxruntime/capi"
else
  capi="$("$VENV/bin/python" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
fi
lib="$(ls "$capi"/libonnxruntime.so.* 2>/dev/null | head -n 1 || true)"
[ -n "$lib" ] || { echo "no libonnxruntime.so.* in $capi" >"$LOG"; false; }
mkdir -p "$VENV/ort"
ln -sfn "$lib" "$VENV/ort/libonnxruntime.so"
say "engine will load $(readlink "$VENV/ort/libonnxruntime.so")"

# ---------------------------------------------------------------------------------------------
STEP="4/6 cargo build --release (iplap CLI + GStreamer plugin)"
HINT="install the Rust toolchain (rustup, Rust >= 1.95); if pkg-config cannot find gstreamer-1.0, rerun step 1"
command -v cargo >/dev/null || { echo "cargo not found on PATH" >"$LOG"; false; }
say "building (first build takes a few minutes)"
run cargo build --release --workspace --locked

# ---------------------------------------------------------------------------------------------
STEP="5/6 MediaPipe face models (mediapipe==$MEDIAPIPE_VERSION wheel -> ONNX)"
HINT="check that PyPI is reachable (pip download of the mediapipe wheel); delete models/cache/ and rerun scripts/setup.sh"
WHEEL_DIR="$ROOT/models/cache"
wheel="$(ls "$WHEEL_DIR"/mediapipe-"$MEDIAPIPE_VERSION"-*.whl 2>/dev/null | head -n 1 || true)"
if [ -z "$wheel" ]; then
  say "downloading the mediapipe $MEDIAPIPE_VERSION wheel (models only; not installed)"
  # Only wheels <= 0.10.21 ship the legacy face models; the manylinux_2_28 build is the one PyPI has.
  run "$VENV/bin/python" -m pip download --disable-pip-version-check -q --no-deps \
    "mediapipe==$MEDIAPIPE_VERSION" --python-version 3.11 --platform manylinux_2_28_x86_64 \
    --only-binary=:all: -d "$WHEEL_DIR"
  wheel="$(ls "$WHEEL_DIR"/mediapipe-"$MEDIAPIPE_VERSION"-*.whl | head -n 1)"
fi
# Conversion takes well under a second and is deterministic: always redo it, so that a changed
# converter never leaves stale models behind. The .tflite files are checked against pinned sha256s.
run "$ROOT/target/release/iplap" prepare-face-models "$wheel" --out "$ROOT/models/generated/face"

# ---------------------------------------------------------------------------------------------
STEP="6/6 GStreamer loads the plugin"
HINT="run 'gst-inspect-1.0 target/release/libgstiplap.so' to see why the plugin does not load"
run gst-inspect-1.0 "$ROOT/target/release/libgstiplap.so"

say "done. CLI: target/release/iplap   plugin: GST_PLUGIN_PATH=$ROOT/target/release"

if [ "$INSTALL" = 1 ]; then
  STEP="7/7 install (scripts/install.sh ${INSTALL_ARGS[*]:-})"
  HINT="read the message above; a system-wide install needs root (or use --user, or a PREFIX)"
  run bash "$ROOT/scripts/install.sh" "${INSTALL_ARGS[@]}"
fi
