#!/usr/bin/env bash
# The GPU check (issue #16), for a machine with an NVIDIA GPU: unpack the bundle
# that scripts/gpu-bundle.sh builds, then run this. It
#   1. finds the GPU (nvidia-smi / /dev/nvidia0) and the CUDA + cuDNN libraries: the
#      system's, or PyPI nvidia-* packages of python3 (added to LD_LIBRARY_PATH);
#   2. starts the daemon with [ai] device = "cuda", checks /health reports the GPU and
#      tract-cuda for every model it loaded, runs object and face detection on the
#      sample photos, and times them;
#   3. does the same on the CPU (device = "cpu") and compares: IoU >= 0.99 and
#      confidence within 0.01 (f32); then once more with cuda_f16 = true, compared
#      with the looser IoU >= 0.9 / confidence within 0.05 (reported, not required);
#   4. prints GPU and CPU latencies side by side. Exit 0 only if 2 and the f32 parity pass.
#
# usage: gpu-check/gpu-check.sh            (GPU_CHECK_RUNS=N timed runs per case, default 20)
#   GPU_CHECK_DRY=1: on a box without a GPU, run every step with device = "cpu" in place of
#   "cuda" (checks the script, the client and the parity code; proves nothing about the GPU).
# Bounded: every daemon start, request and the whole run have time limits (< 8 min).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
runs="${GPU_CHECK_RUNS:-20}"
bin="$here/opennvr-edge"
models="$here/models"
compare=(timeout 600 python3 "$here/gpu_compare.py")

die() { echo "gpu-check: FAIL: $*" >&2; exit 1; }
warn() { echo "gpu-check: $*" >&2; return 1; }
step() { echo; echo "== $*"; }

[ -x "$bin" ] || die "no opennvr-edge binary beside this script (build the bundle with scripts/gpu-bundle.sh and unpack it)"
[ -f "$models/manifest.json" ] || die "no models/manifest.json beside this script"
command -v python3 >/dev/null || die "python3 is needed for the HTTP client"

dev=cuda
expect=tract-cuda
if [ -n "${GPU_CHECK_DRY:-}" ]; then
    dev=cpu
    expect=tract-cpu
    echo "gpu-check: DRY RUN: device = cpu stands in for cuda"
fi

step "GPU"
if [ -n "${GPU_CHECK_DRY:-}" ]; then
    echo "(dry run: not looked for)"
elif command -v nvidia-smi >/dev/null; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
        die "nvidia-smi found no usable GPU"
elif [ ! -e /dev/nvidia0 ]; then
    die "no NVIDIA GPU on this machine (no nvidia-smi, no /dev/nvidia0)"
fi

step "CUDA libraries"
pylibs="$(python3 - <<'PY'
import glob, os, site, sys
roots = {p for p in sys.path + site.getsitepackages() + [site.getusersitepackages()] if p and os.path.isdir(p)}
print(":".join(sorted({os.path.dirname(f) for r in roots for f in glob.glob(os.path.join(r, "nvidia", "*", "lib", "lib*.so*"))})))
PY
)"
if [ -n "$pylibs" ]; then
    export LD_LIBRARY_PATH="$pylibs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "PyPI nvidia-* libraries: ${pylibs//:/ }"
fi
for lib in libcudart libnvrtc libcublas libcudnn; do
    found="$( (ldconfig -p 2>/dev/null | grep -o "$lib\.so[.0-9]*" | head -1) || true)"
    [ -n "$found" ] || found="$(IFS=:; for d in ${LD_LIBRARY_PATH:-}; do ls "$d"/$lib.so* 2>/dev/null; done | head -1)"
    echo "$lib: ${found:-NOT FOUND}"
done

work="$(mktemp -d)"
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
export XDG_CACHE_HOME="$work/cache" # tract-cuda's compiled kernels

# start NAME DEVICE F16 [soft]: starts a daemon, sets $ai to its adapter's URL;
# a failed start ends the check, or with `soft` returns 1.
start() {
    local fail=die
    [ "${4:-}" = soft ] && fail=warn
    local d="$work/$1"
    mkdir -p "$d"
    printf '[ai]\ndevice = "%s"\ncuda_f16 = %s\n' "$2" "$3" >"$d/config.toml"
    OPENNVR_CONFIG="$d/config.toml" OPENNVR_AI_LISTEN=127.0.0.1:0 OPENNVR_NVR_LISTEN=127.0.0.1:0 \
        OPENNVR_DATA_DIR="$d/data" OPENNVR_MODELS_DIR="$models" OPENNVR_LOG=info \
        "$bin" run >"$d/stdout" 2>"$d/log" &
    pids+=($!)
    local pid=$!
    for _ in $(seq 600); do
        if grep -q '^listening ai=' "$d/stdout"; then
            ai="http://$(sed -n 's/^listening ai=\([^ ]*\) .*/\1/p' "$d/stdout")"
            grep -m1 "inference on the" "$d/log" | sed -e "s/\x1b\[[0-9;]*m//g" -e "s/^/  /" || true
            return 0
        fi
        kill -0 "$pid" 2>/dev/null || { tail -5 "$d/log" >&2; $fail "the $1 daemon exited at start (above)"; return 1; }
        sleep 0.1
    done
    $fail "the $1 daemon did not listen within 60 s"
}

stop_last() {
    local p="${pids[-1]}"
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

status=0
step "GPU daemon (device = $dev)"
start gpu "$dev" false
"${compare[@]}" bench "$ai" "$models/samples" "$runs" "$work/gpu.json"
"${compare[@]}" health "$ai" "$expect" || status=1
stop_last

step "CPU daemon (device = cpu)"
start cpu cpu false
"${compare[@]}" bench "$ai" "$models/samples" "$runs" "$work/cpu.json"
stop_last

step "parity, f32: GPU vs CPU (IoU >= 0.99, confidence within 0.01)"
"${compare[@]}" compare "$work/cpu.json" "$work/gpu.json" 0.99 0.01 || status=1

step "GPU daemon, f16 (cuda_f16 = true; reported only)"
if start f16 "$dev" true soft; then
    "${compare[@]}" bench "$ai" "$models/samples" "$runs" "$work/f16.json" || echo "  (the f16 run failed)"
    stop_last
fi
if [ -f "$work/f16.json" ]; then
    step "parity, f16: GPU vs CPU (IoU >= 0.9, confidence within 0.05; reported only)"
    "${compare[@]}" compare "$work/cpu.json" "$work/f16.json" 0.9 0.05 || true
fi

echo
[ "$status" = 0 ] && echo "gpu-check: PASS" || echo "gpu-check: FAIL"
exit "$status"
