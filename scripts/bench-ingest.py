#!/usr/bin/env python3
"""Benchmark: CPU per camera, frames analysed and dropped per camera, and
frame-to-event latency, with busy and quiet cameras.

Starts the given opennvr-edge binary on a temp data dir with BUSY cameras
that replay the vtest street clip (H.264, real time, looped) and QUIET
cameras that replay a still street with sensor noise (a real background:
the temporal median of vtest's frames, ffmpeg's `noise` filter per frame)
where people cross for 5 s every 30 s, at DETECT_FPS. After a warm-up it
measures over WINDOW seconds: CPU time of the daemon and of every ffmpeg
child (from /proc), frames received / analysed / dropped per camera and
the p95 frame-to-event latency (GET /api/v1/cameras/{id}/status; null on
builds before it was measured), CPU seconds per analysed frame (less
sensitive to other load on the box than drops), the load average, and the machine's idle and
steal time (CPU the hypervisor gave to other guests) over the window.
Prints one JSON line per run.

  scripts/bench-ingest.py BINARY --mix 1:7 --mix 5:0 [--fps 5] [--window 60]
      [--motion on --motion off] [--workers 1 --workers 0] [--stagger on --stagger off]
      [--runtime onnxruntime --runtime tract] [--camera-model auto --camera-model yolov4-tiny-416]

--mix BUSY:QUIET (repeatable); --motion sets `[ingest.motion] enabled`
(OPENNVR_MOTION) per run, so the ungated baseline runs in the same
invocation (omit it for builds without gating); --workers sets `[ai]
workers` (0: one per core); --runtime sets `[ai] cpu_runtime`
(OPENNVR_AI_CPU_RUNTIME: `onnxruntime` refuses to start without its
library, so a run never measures the other runtime unawares; omit it for
builds before it); --camera-model sets `[ingest] camera_model`
(OPENNVR_CAMERA_MODEL: `auto` is the int8 detector on onnxruntime, a model
id runs that model; omit it for builds before it). Every combination is
run.

Use an optimised build where you can: a debug build measures the compiler.
"""

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def call(url, body=None, token=None):
    req = urllib.request.Request(url, data=None if body is None else json.dumps(body).encode())
    req.add_header("content-type", "application/json")
    if token:
        req.add_header("authorization", f"Bearer {token}")
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.load(r)


def host_ticks():
    """The machine's CPU ticks from /proc/stat's first line: (idle + iowait,
    steal, total). Steal is time the hypervisor gave another guest: a run
    with more of it had less CPU than its neighbours."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[3] + v[4], v[7], sum(v[:8])


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        kb = next(int(l.split()[1]) for l in f if l.startswith("VmRSS:"))
    return round(kb / 1024)


def status(base, tok, cam):
    return call(f"{base}/api/v1/cameras/{cam}/status", token=tok)


def staggered(quiet, i, n):
    """Camera `i` of `n`'s copy of the quiet clip, started i/n of the way
    through its 30 s (stream copy, cut at its 1 s keyframes), so the quiet
    cameras' crossings come one after another, not all at once."""
    k = 30 * i // n
    if k == 0:
        return quiet
    out = quiet[:-4] + f"-from{k}.mp4"
    if not os.path.exists(out):
        parts = out + ".txt"
        with open(parts, "w") as f:
            f.write(f"file '{quiet}'\ninpoint {k}\nfile '{quiet}'\noutpoint {k}\n")
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", parts,
                        "-c", "copy", out], check=True)
        os.remove(parts)
    return out


def run(binary, models, clips, busy, quiet, fps, warmup, window, motion, workers, stagger=False,
        runtime=None, camera_model=None):
    data = tempfile.mkdtemp(prefix="onvr-bench-")
    env = dict(os.environ, OPENNVR_DATA_DIR=data, OPENNVR_MODELS_DIR=models,
               OPENNVR_AI_LISTEN="127.0.0.1:0", OPENNVR_NVR_LISTEN="127.0.0.1:0", OPENNVR_LOG="warn")
    env.pop("OPENNVR_CONFIG", None)
    if motion is not None:
        env["OPENNVR_MOTION"] = "true" if motion else "false"
    if runtime is not None:
        env["OPENNVR_AI_CPU_RUNTIME"] = runtime
    if camera_model is not None:
        env["OPENNVR_CAMERA_MODEL"] = camera_model
    if workers is not None:
        cfg = os.path.join(data, "bench.toml")
        with open(cfg, "w") as f:
            f.write(f"[ai]\nworkers = {workers}\n")
        env["OPENNVR_CONFIG"] = cfg
    p = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        nvr = [w.split("=", 1)[1] for w in line.split() if w.startswith("nvr=")][0]
        base = f"http://{nvr}"
        pw = open(os.path.join(data, "initial-admin-password")).read().strip()
        tok = call(f"{base}/api/v1/auth/login-json", {"username": "admin", "password": pw})["access_token"]
        cams = {f"busy{i}": clips["busy"] for i in range(busy)}
        cams.update({f"quiet{i}": staggered(clips["quiet"], i, quiet) if stagger else clips["quiet"]
                     for i in range(quiet)})
        for c, clip in cams.items():
            call(f"{base}/api/v1/cameras", {"id": c, "source_url": f"file://{clip}", "detect_fps": fps}, tok)
        time.sleep(warmup)

        def sample():
            st = {c: status(base, tok, c) for c in cams}
            pids = [s.get(k) for s in st.values() for k in ("ffmpeg_pid", "detect_ffmpeg_pid")]
            ff = sum(cpu_s(pid) for pid in pids if pid)
            return time.monotonic(), cpu_s(p.pid), ff, st

        t0, d0, f0, s0 = sample()
        h0 = host_ticks()
        time.sleep(window)
        h1 = host_ticks()
        t1, d1, f1, s1 = sample()
        # The whole machine, in % of one CPU like the rest (200 % on 2 cores).
        host = [(b - a) / TICK / (t1 - t0) * 100 for a, b in zip(h0, h1)]
        dt = t1 - t0
        n = len(cams)
        per_cam = {}
        for c in cams:
            d = {k: s1[c].get(k, 0) - s0[c].get(k, 0)
                 for k in ("frames", "analysed", "dropped", "gated", "regions", "full_passes")}
            d["latency_p95_ms"] = s1[c].get("latency_p95_ms")
            per_cam[c] = d

        def total(key, prefix=""):
            return sum(v[key] for c, v in per_cam.items() if c.startswith(prefix))

        analysed = total("analysed")
        cpu = (d1 - d0) + (f1 - f0)
        return {
            "busy": busy, "quiet": quiet, "detect_fps": fps, "motion": motion, "workers": workers,
            "staggered": stagger, "cpu_runtime": runtime, "camera_model": camera_model,
            "window_s": round(dt, 1), "loadavg_1m": os.getloadavg()[0],
            "daemon_cpu_pct": round(100 * (d1 - d0) / dt, 1), "daemon_rss_mb": rss_mb(p.pid),
            "ffmpeg_cpu_pct": round(100 * (f1 - f0) / dt, 1),
            "host_idle_pct": round(host[0], 1), "host_steal_pct": round(host[1], 1),
            "total_cpu_pct_per_camera": round(100 * cpu / dt / n, 1),
            "daemon_cpu_ms_per_analysed_frame": round(1000 * (d1 - d0) / max(analysed, 1), 1),
            "frames": total("frames"), "analysed": analysed, "dropped": total("dropped"),
            "dropped_pct": round(100 * total("dropped") / max(total("frames"), 1), 1),
            "busy_dropped_pct": round(100 * total("dropped", "busy") / max(total("frames", "busy"), 1), 1),
            "quiet_dropped_pct": round(100 * total("dropped", "quiet") / max(total("frames", "quiet"), 1), 1),
            "worst_p95_ms": max((v["latency_p95_ms"] or 0 for v in per_cam.values()), default=0) or None,
            "restarts": sum(s1[c]["restarts"] - s0[c]["restarts"] for c in cams),
            "per_camera": per_cam,
        }
    finally:
        p.terminate()
        p.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def make_clips(work):
    """The busy clip (vtest as H.264) and the quiet one (still + noise + crossings)."""
    busy = os.path.join(work, "vtest.mp4")
    x264 = ["-an", "-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-pix_fmt", "yuv420p", "-g", "10"]
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", VTEST] + x264 + [busy], check=True)
    still = os.path.join(work, "street.png")
    # The temporal median of 101 frames: the street without its walkers.
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", VTEST,
                    "-vf", "tmedian=radius=50,select=eq(n\\,100)", "-frames:v", "1", still], check=True)
    quiet = os.path.join(work, "quiet.mp4")
    # 30 s at 10 fps: the still with per-frame sensor noise; vtest's walkers
    # cross the same street from 20 s to 25 s.
    graph = ("[1:v]trim=0:5,setpts=PTS-STARTPTS+20/TB[walk];"
             "[0:v][walk]overlay=eof_action=pass,noise=alls=8:allf=t,format=yuv420p")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-loop", "1", "-framerate", "10", "-i", still,
                    "-i", VTEST, "-filter_complex", graph, "-t", "30", "-r", "10"] + x264[1:] + [quiet],
                   check=True)
    return {"busy": busy, "quiet": quiet}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--mix", action="append", default=[], help="BUSY:QUIET cameras (repeatable)")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--motion", action="append", choices=["on", "off"], default=[])
    ap.add_argument("--workers", action="append", type=int, default=[])
    ap.add_argument("--clips", help="reuse (or keep) the made clips in this folder")
    ap.add_argument("--stagger", action="append", choices=["on", "off"], default=[],
                    help="on: each quiet camera starts its clip at another point, so crossings come one "
                         "after another; off: all at once (the worst case)")
    ap.add_argument("--runtime", action="append", choices=["onnxruntime", "tract", "auto"], default=[],
                    help="[ai] cpu_runtime per run (repeatable)")
    ap.add_argument("--camera-model", action="append", default=[],
                    help="[ingest] camera_model per run (repeatable): auto or a model id")
    ap.add_argument("--models", default=os.path.join(os.path.dirname(__file__), "..", "models", "dist"))
    a = ap.parse_args()
    mixes = [tuple(int(x) for x in m.split(":")) for m in (a.mix or ["1:7", "5:0"])]
    work = a.clips or tempfile.mkdtemp(prefix="onvr-bench-clip-")
    have = {k: os.path.join(work, f) for k, f in (("busy", "vtest.mp4"), ("quiet", "quiet.mp4"))}
    clips = have if all(os.path.exists(p) for p in have.values()) else make_clips(work)
    print(json.dumps({"machine": f"{os.cpu_count()} CPUs, " + open("/proc/cpuinfo").read().split("model name")[1]
                      .split("\n")[0].strip(" :\t"), "binary": a.binary}), flush=True)
    for (busy, quiet), motion, workers, stagger, runtime, camera_model in itertools.product(
            mixes, [m == "on" for m in a.motion] or [None], a.workers or [None],
            [x == "on" for x in a.stagger] or [False], a.runtime or [None], a.camera_model or [None]):
        r = run(a.binary, os.path.abspath(a.models), clips, busy, quiet, a.fps, a.warmup,
                a.window, motion, workers, stagger, runtime, camera_model)
        print(json.dumps(r), flush=True)
    if not a.clips:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
