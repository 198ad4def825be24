#!/usr/bin/env bash
# Builds the release .deb for this machine's architecture (x86_64 -> amd64):
# models and the onnxruntime CPU library (models/fetch.sh: fetched once,
# sha256-checked every time), the release binary, then cargo-deb. Prints the
# .deb's path.
#
# usage: packaging/build-deb.sh [cargo-deb options, e.g. --deb-version 0.1.0-2]
#   OPENNVR_CUDA=FEATURE  the CUDA backend's cargo feature (docs/gpu.md); default `cuda`
#                         (CUDA 13 driver API: x86_64 drivers >= 580); `none` leaves it out.
#
# Release builds take ~35 min on 2 cores; CARGO_TARGET_DIR is honoured.
# arm64 (Jetson): packaging/build-arm64.sh. What the package installs: docs/packaging.md.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

cargo_deb_version=3.8.0 # same pin as scripts/setup.sh
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    echo "build-deb: installing cargo-deb $cargo_deb_version" >&2
    env -u CARGO_TARGET_DIR cargo install --locked --quiet "cargo-deb@$cargo_deb_version"
fi

models/fetch.sh >&2
cuda="${OPENNVR_CUDA:-cuda}"
features=()
[ "$cuda" = none ] || features=(--features "$cuda")
cargo build --release --locked "${features[@]}" >&2
# The onnxruntime CPU library (fetch.sh: this machine's architecture) goes beside the binary,
# where Cargo.toml's asset target/release/libonnxruntime.so.1.20.1 points.
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
install -m 644 models/dist/runtime/libonnxruntime.so.1.20.1 "$target_dir/release/"
cargo deb --no-build --locked "$@"
