#!/usr/bin/env python3
"""Benchmark: CPU per camera, and how many cameras a box sustains without
dropping detection frames.

Starts the given opennvr-edge binary on a temp data dir with N cameras that
replay the vtest street clip (H.264, real time, looped) at DETECT_FPS, lets it
warm up, then measures over WINDOW seconds: CPU time of the daemon and of each
ffmpeg child (from /proc), and frames received / analysed / dropped (from
GET /api/v1/cameras/{id}/status). Prints one JSON line per N.

  scripts/bench-ingest.py target/release/opennvr-edge 1 2 3 [--fps 5] [--window 60]

--no-motion turns motion gating off (the ungated baseline, OPENNVR_MOTION=false);
--quiet replays a quiet camera instead of vtest: Debian's real still of a street
facade (leuvenA.jpg) with temporal sensor noise, H.264 like the camera would send.

Use a release build: a debug build measures the compiler, not the pipeline.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

VTEST = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
STILL = "/usr/share/doc/opencv-doc/examples/data/leuvenA.jpg"
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


def run(binary, models, clip, n, fps, warmup, window, motion=True):
    data = tempfile.mkdtemp(prefix="onvr-bench-")
    env = dict(os.environ, OPENNVR_DATA_DIR=data, OPENNVR_MODELS_DIR=models,
               OPENNVR_AI_LISTEN="127.0.0.1:0", OPENNVR_NVR_LISTEN="127.0.0.1:0", OPENNVR_LOG="warn",
               OPENNVR_MOTION=str(motion).lower())
    env.pop("OPENNVR_CONFIG", None)
    p = subprocess.Popen([binary, "run"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        nvr = [w.split("=", 1)[1] for w in line.split() if w.startswith("nvr=")][0]
        base = f"http://{nvr}"
        pw = open(os.path.join(data, "initial-admin-password")).read().strip()
        tok = call(f"{base}/api/v1/auth/login-json", {"username": "admin", "password": pw})["access_token"]
        cams = [f"cam{i}" for i in range(n)]
        for c in cams:
            call(f"{base}/api/v1/cameras", {"id": c, "source_url": f"file://{clip}", "detect_fps": fps}, tok)
        time.sleep(warmup)

        def sample():
            st = {c: call(f"{base}/api/v1/cameras/{c}/status", token=tok) for c in cams}
            ff = sum(cpu_s(s["ffmpeg_pid"]) for s in st.values())
            return time.monotonic(), cpu_s(p.pid), ff, st

        t0, d0, f0, s0 = sample()
        time.sleep(window)
        t1, d1, f1, s1 = sample()
        dt = t1 - t0

        def delta(key):
            return sum(s1[c][key] - s0[c][key] for c in cams)

        frames, analysed, dropped = delta("frames"), delta("analysed"), delta("dropped")
        return {
            "cameras": n, "detect_fps": fps, "window_s": round(dt, 1),
            "daemon_cpu_pct": round(100 * (d1 - d0) / dt, 1),
            "ffmpeg_cpu_pct_per_camera": round(100 * (f1 - f0) / dt / n, 1),
            "total_cpu_pct_per_camera": round(100 * ((d1 - d0) + (f1 - f0)) / dt / n, 1),
            "frames": frames, "analysed": analysed, "dropped": dropped,
            "dropped_pct": round(100 * dropped / max(frames, 1), 1),
            "restarts": delta("restarts"),
            "motion": motion, "gated": delta("gated"), "regions": delta("regions"),
            "full_passes": delta("full_passes"),
        }
    finally:
        p.terminate()
        p.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("cameras", type=int, nargs="+")
    ap.add_argument("--fps", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=15.0)
    ap.add_argument("--window", type=float, default=60.0)
    ap.add_argument("--no-motion", action="store_true", help="motion gating off (ungated baseline)")
    ap.add_argument("--quiet", action="store_true", help="a quiet camera (real still + noise), not vtest")
    ap.add_argument("--models", default=os.path.join(os.path.dirname(__file__), "..", "models", "dist"))
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="onvr-bench-clip-")
    clip = os.path.join(work, "vtest.mp4")
    src = ["-loop", "1", "-framerate", "10", "-i", STILL, "-t", "60", "-vf",
           "scale=752:564,noise=alls=24:allf=t+u"] if a.quiet else ["-i", VTEST]
    subprocess.run(["ffmpeg", "-v", "error", "-y", *src, "-an", "-c:v", "libx264", "-preset", "veryfast",
                    "-crf", "26", "-pix_fmt", "yuv420p", "-g", "10", clip], check=True)
    print(json.dumps({"machine": f"{os.cpu_count()} CPUs, " + open("/proc/cpuinfo").read().split("model name")[1]
                      .split("\n")[0].strip(" :\t")}), flush=True)
    for n in a.cameras:
        print(json.dumps(run(a.binary, os.path.abspath(a.models), clip, n, a.fps, a.warmup, a.window,
                             not a.no_motion)), flush=True)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
