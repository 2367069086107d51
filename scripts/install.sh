#!/usr/bin/env bash
# iplap — install what scripts/setup.sh built, so that GStreamer and the shell find it without
# this checkout. Usually run as `scripts/setup.sh --install [PREFIX]` (which builds first).
#
#   scripts/install.sh              system-wide (root): the plugin into GStreamer's system plugin
#                                   folder, iplap into /usr/local/bin, data into /usr/local/share/iplap
#   scripts/install.sh --user       for this user, no root: the plugin into
#                                   ~/.local/share/gstreamer-1.0/plugins (GStreamer's user folder),
#                                   iplap into ~/.local/bin, data into ~/.local/share/iplap
#   scripts/install.sh PREFIX       into PREFIX/lib/gstreamer-1.0, PREFIX/bin, PREFIX/share/iplap;
#                                   GStreamer needs GST_PLUGIN_PATH=PREFIX/lib/gstreamer-1.0
#
# Data folder (found by the installed plugin and CLI through their search order, see README):
#   face/                          the converted MediaPipe face models
#   onnxruntime/libonnxruntime.so  a copy of the pinned ONNX Runtime (a link into gpu/ when
#                                  setup installed the GPU runtime)
#   gpu/                           the GPU runtime of setup.sh --gpu: onnxruntime-gpu, CUDA wheels
#   nvrtc/                         NVRTC 13.0 for the CUDA kernels (with the GPU runtime)
#   models/ip_lap/                 the checkout's model package, when one was converted there
set -Eeuo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MODE="system"
PREFIX=""
for arg in "$@"; do
  case "$arg" in
    --user) MODE="user" ;;
    -h | --help)
      sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    -*)
      echo "install.sh: unknown option '$arg' (try --help)" >&2
      exit 2
      ;;
    *)
      MODE="prefix"
      PREFIX="$arg"
      ;;
  esac
done

fail() {
  echo "install.sh: $1" >&2
  echo "What to do: $2" >&2
  exit 1
}

PLUGIN="$ROOT/target/release/libgstiplap.so"
CLI="$ROOT/target/release/iplap"
FACE="$ROOT/models/generated/face"
ORT="$ROOT/.venv/ort/libonnxruntime.so"
PACKAGE="$ROOT/models/ip_lap"
for f in "$PLUGIN" "$CLI" "$ORT"; do
  [ -e "$f" ] || fail "$f is missing" "run scripts/setup.sh first (or scripts/setup.sh --install, which does both)"
done
[ -f "$FACE/face_detection_short_range.onnx" ] && [ -f "$FACE/face_landmark_with_attention.onnx" ] ||
  fail "the face models are missing in $FACE" "run scripts/setup.sh first"

case "$MODE" in
  system)
    [ "$(id -u)" = 0 ] || fail "a system-wide install needs root" \
      "rerun with sudo, or install for this user with --user, or into a folder with PREFIX"
    PLUGIN_DIR="$(pkg-config --variable=pluginsdir gstreamer-1.0)"
    BIN_DIR="/usr/local/bin"
    DATA_DIR="/usr/local/share/iplap"
    ;;
  user)
    data_home="${XDG_DATA_HOME:-$HOME/.local/share}"
    PLUGIN_DIR="$data_home/gstreamer-1.0/plugins"
    BIN_DIR="$HOME/.local/bin"
    DATA_DIR="$data_home/iplap"
    ;;
  prefix)
    mkdir -p "$PREFIX"
    PREFIX="$(cd "$PREFIX" && pwd)"
    PLUGIN_DIR="$PREFIX/lib/gstreamer-1.0"
    BIN_DIR="$PREFIX/bin"
    DATA_DIR="$PREFIX/share/iplap"
    ;;
esac

mkdir -p "$PLUGIN_DIR" "$BIN_DIR" "$DATA_DIR/face" "$DATA_DIR/onnxruntime"
# install(1) replaces files atomically enough for a running GStreamer to keep its mapping.
install -m 0755 "$PLUGIN" "$PLUGIN_DIR/libgstiplap.so"
install -m 0755 "$CLI" "$BIN_DIR/iplap"
install -m 0644 "$FACE"/*.onnx "$DATA_DIR/face/"
ORT_REAL="$(readlink -f "$ORT")"
GPU_SRC="$ROOT/.venv/gpu"
rm -rf "$DATA_DIR/gpu" "$DATA_DIR/nvrtc" "$DATA_DIR/onnxruntime/libonnxruntime.so"
if [ -f "$GPU_SRC/.installed" ] && [[ "$ORT_REAL" == "$GPU_SRC"/* ]]; then
  # The GPU build with its provider libraries and NVIDIA's CUDA wheels, laid out as setup made
  # them (the engine finds the libraries relative to libonnxruntime's real path). Hard links
  # where the data folder is on the same file system (2.2 GB otherwise).
  cp -al "$GPU_SRC" "$DATA_DIR/gpu" 2>/dev/null || cp -R "$GPU_SRC" "$DATA_DIR/gpu"
  ln -s "../gpu/${ORT_REAL#"$GPU_SRC"/}" "$DATA_DIR/onnxruntime/libonnxruntime.so"
  # NVRTC for the CUDA kernels (the engine loads nvrtc/libnvrtc.so.13 and its builtins beside it).
  NVRTC_LIB="$ROOT/.venv/nvrtc/nvidia/cu13/lib"
  if [ -f "$NVRTC_LIB/libnvrtc.so.13" ]; then
    mkdir -p "$DATA_DIR/nvrtc"
    install -m 0644 "$NVRTC_LIB/libnvrtc.so.13" "$NVRTC_LIB/libnvrtc-builtins.so.13.0" "$DATA_DIR/nvrtc/"
  fi
  gpu_note="GPU runtime: $DATA_DIR/gpu"
else
  # The real file behind setup's link; the engine loads it by this fixed name.
  install -m 0644 "$ORT_REAL" "$DATA_DIR/onnxruntime/libonnxruntime.so"
  gpu_note="GPU runtime: not installed (scripts/setup.sh --gpu, then install again)"
fi
if [ -f "$PACKAGE/manifest.json" ]; then
  rm -rf "$DATA_DIR/models/ip_lap"
  mkdir -p "$DATA_DIR/models"
  cp -R "$PACKAGE" "$DATA_DIR/models/ip_lap"
  package_note="model package: $DATA_DIR/models/ip_lap"
else
  package_note="no model package yet: convert the checkpoints with
    iplap convert --landmark-checkpoint landmarkgenerator_checkpoint.pth \\
      --renderer-checkpoint renderer_checkpoint.pth --out $DATA_DIR/models/ip_lap"
fi

echo "installed:"
echo "  plugin: $PLUGIN_DIR/libgstiplap.so"
echo "  CLI:    $BIN_DIR/iplap"
echo "  data:   $DATA_DIR (face models, ONNX Runtime)"
echo "  $package_note"
echo "  $gpu_note"
if [ "$MODE" = "prefix" ]; then
  echo "GStreamer looks in this plugin folder only when told to:"
  echo "  export GST_PLUGIN_PATH=$PLUGIN_DIR"
fi
if [ "$MODE" = "user" ] && [[ ":$PATH:" != *":$BIN_DIR:"* ]]; then
  echo "add $BIN_DIR to PATH to run iplap by name"
fi
