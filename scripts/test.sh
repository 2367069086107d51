#!/usr/bin/env bash
# iplap — the one test command. Prepares everything the tests need (scripts/setup.sh --gpu, quietly),
# then runs the whole test suite. `.ci/run` calls exactly this.
#
#   scripts/test.sh [extra cargo test arguments, e.g. a test name filter]
#
# Shared reference data (goldens, media) is found through IPLAP_SHARED, default ../shared next to
# this checkout. Tests that need it skip loudly when it is missing; under CI (CI=true) a missing
# folder is an error instead, so CI can never pass by skipping.
set -Eeuo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

start=$(date +%s)
# With the GPU runtime (onnxruntime-gpu and NVIDIA's CUDA wheels, ~2.2 GB) even without a GPU: every
# test then runs on the GPU build of ONNX Runtime (CPU sessions, same results), and the GPU devices
# are checked to fail cleanly, naming what is missing. IPLAP_TEST_GPU_RUNTIME=0 skips it.
if [ "${IPLAP_TEST_GPU_RUNTIME:-1}" = 0 ]; then
  setup_args=(--quiet)
else
  setup_args=(--quiet --gpu)
fi
echo "==> preparing (scripts/setup.sh ${setup_args[*]})"
bash scripts/setup.sh "${setup_args[@]}"

export IPLAP_SHARED="${IPLAP_SHARED:-$ROOT/../shared}"
if [ -d "$IPLAP_SHARED" ]; then
  IPLAP_SHARED="$(cd "$IPLAP_SHARED" && pwd)"
  echo "==> shared data: $IPLAP_SHARED"
else
  echo "!!!! shared data not found at $IPLAP_SHARED: golden and media tests will SKIP (set IPLAP_SHARED) !!!!"
fi
if [ "${CI:-}" = "true" ]; then
  export IPLAP_REQUIRE_SHARED=1
fi

echo "==> formatting (cargo fmt --check)"
cargo fmt --all -- --check

echo "==> tests (release profile: shares the build made by setup)"
cargo test --workspace --release --locked "$@"

echo "==> all tests passed in $(($(date +%s) - start)) s"
