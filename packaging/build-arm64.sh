#!/usr/bin/env bash
# Builds the arm64 (aarch64: NVIDIA Jetson, Raspberry Pi 4/5) .deb on a
# Debian 12 x86_64 machine with Debian's own cross toolchain: no Docker, no
# rustup targets. The one arm64 build route (docs/packaging.md).
#
# usage: packaging/build-arm64.sh [--glibc 2.31] [cargo-deb options]
#   OPENNVR_CUDA=FEATURE  the CUDA backend's cargo feature (docs/gpu.md): default
#              `cuda-12060` (JetPack 6.1/6.2, CUDA 12.6); `cuda-12020` for JetPack 6.0,
#              `cuda-13000` for JetPack 7 (Thor); `none` leaves it out. With --glibc 2.31
#              (JetPack 5: CUDA 11.4, which tract-cuda does not support) it is always `none`.
#   --glibc V  link against glibc V instead of the build machine's (2.36) with
#              cargo-zigbuild + PyPI ziglang, for JetPack 5 (Ubuntu 20.04, glibc
#              2.31). Without it the binary needs glibc >= 2.35: JetPack 6
#              (Ubuntu 22.04), Debian 12, Ubuntu 24.04.
#
# Steps (each skipped when already done): dpkg --add-architecture arm64;
# apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross rustc-web
# cargo-web libstd-rust-web-dev:arm64 qemu-user-static (rustc-web is Rust 1.96
# from bookworm-security; the crate needs >= 1.92); rustup toolchain link
# debian-web /usr; cargo build --release for aarch64-unknown-linux-gnu
# (linker and C compiler aarch64-linux-gnu-gcc: rusqlite bundles SQLite's C);
# cargo-deb --target aarch64-unknown-linux-gnu --no-build.
# `cargo +debian-web test --target aarch64-unknown-linux-gnu` runs tests under
# qemu-aarch64-static (the runner set below; libc6:arm64 is installed, so no -L).
#
# Target dir: $CARGO_TARGET_DIR, default ~/.cache/opennvr-edge/target-arm64
# (its own: a different rustc than the dev builds). Takes ~40 min on 2 cores.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
target=aarch64-unknown-linux-gnu
toolchain=debian-web

glibc=""
if [ "${1:-}" = --glibc ]; then
    glibc="$2"
    shift 2
fi

cuda="${OPENNVR_CUDA:-cuda-12060}"
[ -z "$glibc" ] || cuda=none
features=()
[ "$cuda" = none ] || features=(--features "$cuda")

sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

# --------------------------------------------------------------------------- toolchain
dpkg --print-foreign-architectures | grep -qx arm64 || {
    $sudo dpkg --add-architecture arm64
    $sudo apt-get update -qq
}
pkgs=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross rustc-web cargo-web libstd-rust-web-dev:arm64 qemu-user-static)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "build-arm64: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rustup toolchain list | grep -q "^$toolchain" || rustup toolchain link "$toolchain" /usr

cargo_deb_version=3.8.0 # same pin as scripts/setup.sh
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
    env -u CARGO_TARGET_DIR cargo install --locked --quiet "cargo-deb@$cargo_deb_version"
fi

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge/target-arm64}"
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=qemu-aarch64-static
# The models, plus the aarch64 onnxruntime library in models/dist/runtime/aarch64/ (the build
# machine's own in models/dist/runtime/ stays as it is).
models/fetch.sh --runtime-arch aarch64 >&2

# --------------------------------------------------------------------------- build
if [ -z "$glibc" ]; then
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
    export AR_aarch64_unknown_linux_gnu=aarch64-linux-gnu-ar
    cargo "+$toolchain" build --release --locked --target "$target" "${features[@]}" >&2
else
    # zig links against a glibc stub of the requested version; cargo-zigbuild
    # puts the output in the plain target's dir, where cargo-deb looks.
    zig_venv="${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge/zig-venv"
    [ -x "$zig_venv/bin/python" ] || python3 -m venv "$zig_venv"
    # Pinned: the versions this build was checked with (docs/packaging.md).
    [ "$("$zig_venv/bin/python" -m ziglang version 2>/dev/null)" = 0.17.1 ] ||
        "$zig_venv/bin/pip" install --quiet --only-binary=:all: ziglang==0.17.1 >&2
    [ "$(cargo-zigbuild --version 2>/dev/null)" = "cargo-zigbuild 0.24.1" ] ||
        env -u CARGO_TARGET_DIR cargo install --locked --quiet cargo-zigbuild@0.24.1
    PATH="$zig_venv/bin:$PATH" cargo "+$toolchain" zigbuild --release --locked --target "$target.$glibc" "${features[@]}" >&2
fi

# --------------------------------------------------------------------------- package
# The aarch64 onnxruntime library goes beside the arm64 binary, where Cargo.toml's asset
# target/release/libonnxruntime.so.1.20.1 points under --target.
install -m 644 models/dist/runtime/aarch64/libonnxruntime.so.1.20.1 "$CARGO_TARGET_DIR/$target/release/"
# strip for the target's binaries; $auto Depends comes from dpkg-shlibdeps on the arm64 binary.
# --glibc V uses the [package.metadata.deb.variants.glibcV] section (libc6 >= V).
variant=()
[ -z "$glibc" ] || variant=(--variant "glibc${glibc//./}")
cargo deb --no-build --locked --target "$target" "${variant[@]}" "$@"
