#!/usr/bin/env bash
# Cold start of the daemon: milliseconds from exec to the first 200 from /health
# on BOTH ports, over a data dir that `init` already prepared (as after the
# .deb's postinst, i.e. a reboot, not the very first start). Page cache warm.
#
# usage: packaging/cold-start.sh BINARY [RUNS] [RUNNER...]
#   RUNNER: e.g. qemu-aarch64-static to time an arm64 binary on x86 (emulated:
#   not a Jetson's number). Prints one line per run, then the median.
# Models: models/dist (OPENNVR_MODELS_DIR overrides); loaded lazily, so not timed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$1"
runs="${2:-5}"
shift 2 || shift $#
runner=("$@")
tmp="$(mktemp -d)"
pid=""
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
export OPENNVR_DATA_DIR="$tmp/data" OPENNVR_MODELS_DIR="${OPENNVR_MODELS_DIR:-$root/models/dist}" OPENNVR_LOG=warn
export OPENNVR_AI_LISTEN=127.0.0.1:0 OPENNVR_NVR_LISTEN=127.0.0.1:0
unset OPENNVR_CONFIG
"${runner[@]}" "$bin" init >/dev/null 2>&1
times=()
for i in $(seq 1 "$runs"); do
    : >"$tmp/out"
    t0=$(date +%s%N)
    "${runner[@]}" "$bin" run >"$tmp/out" 2>"$tmp/err" &
    pid=$!
    until line="$(grep -m1 '^listening ' "$tmp/out")"; do
        kill -0 "$pid" 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
        sleep 0.005
    done
    ai="$(sed 's/.*ai=\([^ ]*\).*/\1/' <<<"$line")"
    nvr="$(sed 's/.*nvr=\([^ ]*\).*/\1/' <<<"$line")"
    for url in "http://$ai/health" "http://$nvr/health"; do
        until curl -fs -o /dev/null "$url"; do sleep 0.005; done
    done
    ms=$((($(date +%s%N) - t0) / 1000000))
    times+=("$ms")
    echo "run $i: ${ms} ms"
    kill -TERM "$pid"
    wait "$pid" || true
    pid=""
done
printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {print "median: " a[int((NR+1)/2)] " ms"}'
