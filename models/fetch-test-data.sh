#!/usr/bin/env bash
# Fetch test-only photos from PyPI, pinned and verified. See models/README.md.
#
# usage: models/fetch-test-data.sh [DIR]
#
#   DIR   models directory; default $OPENNVR_MODELS_DIR, else models/dist next to this
#         script (as models/fetch.sh). Photos land in DIR/samples/.
#
# Today: scikit-image's astronaut.png (NASA photo of Eileen Collins, public domain; the
# face_detection tests' one-female-face case), taken from a pinned scikit-image wheel.
# The wheel and the photo are checked against the sha256 pinned below; any mismatch
# aborts. Idempotent: a photo already in place with the right checksum is kept and
# nothing is downloaded.
#
# Environment:
#   OPENNVR_MODELS_DIR    default DIR
#   OPENNVR_MODELS_CACHE  download cache; default ${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge
#   OPENNVR_PYTHON        interpreter with pip (default python3)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prog="fetch-test-data.sh"

# One wheel, pinned by file name and sha256; --platform/--python-version make pip pick it
# on any host, --no-deps keeps scikit-image's dependencies out.
skimage_spec="scikit-image==0.25.2"
skimage_wheel="scikit_image-0.25.2-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
skimage_sha="24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
astronaut_member="skimage/data/astronaut.png"
astronaut_sha="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"

die() { echo "$prog: error: $*" >&2; exit 1; }
case "${1:-}" in
    -h | --help) sed -n '2,18p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "unknown option $1" ;;
esac
[ $# -le 1 ] || die "only one DIR may be given"

dir="${1:-${OPENNVR_MODELS_DIR:-$here/dist}}"
cache="${OPENNVR_MODELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge}"
python="${OPENNVR_PYTHON:-python3}"
command -v sha256sum >/dev/null || die "sha256sum (coreutils) is required"
command -v "$python" >/dev/null || die "$python not found (set OPENNVR_PYTHON)"

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

out="$dir/samples/astronaut.png"
if [ -f "$out" ] && [ "$(sha_of "$out")" = "$astronaut_sha" ]; then
    exit 0
fi

dl="$cache/downloads/$skimage_sha"
whl="$dl/$skimage_wheel"
if ! [ -f "$whl" ] || [ "$(sha_of "$whl")" != "$skimage_sha" ]; then
    mkdir -p "$dl"
    rm -f "$whl"
    echo "$prog: downloading $skimage_spec" >&2
    "$python" -m pip download --quiet --no-deps --only-binary=:all: \
        --python-version 3.11 --implementation cp --abi cp311 \
        --platform manylinux_2_17_x86_64 --dest "$dl" "$skimage_spec" \
        || die "pip download $skimage_spec failed"
    [ -f "$whl" ] || die "pip did not produce $skimage_wheel"
fi
got="$(sha_of "$whl")"
[ "$got" = "$skimage_sha" ] || { rm -f "$whl"; die "$skimage_wheel has sha256 $got, expected $skimage_sha"; }

mkdir -p "$dir/samples"
tmp="$(mktemp "$dir/samples/.astronaut.XXXXXX")"
trap 'rm -f "$tmp"' EXIT
"$python" - "$whl" "$astronaut_member" "$tmp" <<'EOF'
import sys, zipfile
wheel, member, dest = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, open(dest, "wb") as f:
    f.write(z.read(member))
EOF
got="$(sha_of "$tmp")"
[ "$got" = "$astronaut_sha" ] || die "$astronaut_member has sha256 $got, expected $astronaut_sha"
chmod 644 "$tmp"
mv -f "$tmp" "$out"
echo "$prog: wrote $out" >&2
