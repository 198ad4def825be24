#!/usr/bin/env bash
# Runs the arm64 .deb's binary on this x86_64 machine under qemu-aarch64-static
# (user-mode emulation): the onnxruntime library must be the pinned aarch64
# one, `models` verifies the packaged models, then the daemon
# must answer /health on both ports and one real /infer (object_detection on
# Debian darknet's person.jpg must find the person, the dog and the horse),
# and exit cleanly on SIGTERM. Nothing is installed: the .deb is unpacked.
#
# usage: packaging/check-arm64.sh [DEB]
#   DEB: default ~/.cache/opennvr-edge/target-arm64/debian/opennvr-edge_*_arm64.deb
#   (what packaging/build-arm64.sh produced; it installs qemu-user-static and libc6:arm64).
set -euo pipefail
deb="${1:-$(ls -t "${XDG_CACHE_HOME:-$HOME/.cache}"/opennvr-edge/target-arm64/debian/opennvr-edge_*_arm64.deb | head -n1)}"
photo=/usr/share/darknet/data/person.jpg
die() { echo "check-arm64: FAIL: $*" >&2; exit 1; }
[ -f "$deb" ] || die "no .deb at $deb"
[ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] || die "$deb is not arm64"
[ -f "$photo" ] || die "no $photo (Debian darknet; scripts/setup.sh)"
tmp="$(mktemp -d)"
pid=""
trap '[ -z "$pid" ] || kill -KILL "$pid" 2>/dev/null || true; rm -rf "$tmp"' EXIT
dpkg-deb -x "$deb" "$tmp/root"
# The onnxruntime CPU library: the aarch64 one, the bytes models/runtime.sha256 pins.
lib=usr/lib/opennvr-edge/libonnxruntime.so.1.20.1
want="$(awk '$2 == "aarch64/libonnxruntime.so.1.20.1" { print $1 }' "$(dirname "$0")/../models/runtime.sha256")"
[ -f "$tmp/root/$lib" ] || die "no /$lib in the package"
[ "$(sha256sum "$tmp/root/$lib" | cut -d' ' -f1)" = "$want" ] || die "/$lib is not the pinned aarch64 library"
bin="$tmp/root/usr/bin/opennvr-edge"
run() { qemu-aarch64-static "$bin" "$@"; }
export OPENNVR_DATA_DIR="$tmp/data" OPENNVR_MODELS_DIR="$tmp/root/usr/share/opennvr-edge/models"
export OPENNVR_LOG=warn OPENNVR_AI_LISTEN=127.0.0.1:0 OPENNVR_NVR_LISTEN=127.0.0.1:0
unset OPENNVR_CONFIG
run models >/dev/null || die "models: the packaged models do not verify"
qemu-aarch64-static "$bin" run >"$tmp/out" 2>"$tmp/err" &
pid=$!
until line="$(grep -m1 '^listening ' "$tmp/out")"; do
    kill -0 "$pid" 2>/dev/null || die "daemon exited: $(cat "$tmp/err")"
    sleep 0.05
done
ai="$(sed 's/.*ai=\([^ ]*\).*/\1/' <<<"$line")"
nvr="$(sed 's/.*nvr=\([^ ]*\).*/\1/' <<<"$line")"
curl -fsS -o /dev/null "http://$ai/health" || die "AI adapter /health"
curl -fsS -o /dev/null "http://$nvr/health" || die "NVR core /health"
t0=$(date +%s%N)
curl -fsS -F task=object_detection -F "frame=@$photo" "http://$ai/infer" >"$tmp/infer.json" || die "/infer"
ms=$((($(date +%s%N) - t0) / 1000000))
labels="$(python3 -c 'import json,sys; print(" ".join(sorted(d["label"] for d in json.load(open(sys.argv[1]))["detections"])))' "$tmp/infer.json")"
[ "$labels" = "dog horse person" ] || die "/infer found '$labels', want 'dog horse person'"
kill -TERM "$pid"
wait "$pid" || die "daemon exited $? on SIGTERM: $(tail -n 5 "$tmp/err")"
pid=""
echo "check-arm64: PASS: $(basename "$deb"): /health 200 on both ports; /infer found $labels (${ms} ms emulated, model load included)"
