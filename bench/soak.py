#!/usr/bin/env python3
"""The Python half of bench/soak.sh: builds the course, watches the running import, judges it.

    soak.py course ROOT FILES          build ROOT/ with FILES files (photos, PNGs, PDFs, videos)
    soak.py faults CF_URL S3_URL SEED  post the steady fault rules to both fakes
    soak.py watch PID EVENTS FILES CF_URL SAMPLES [--storm-at 0.3]
                                       sample /proc/PID (and its decoder workers) every second until it exits; post the
                                       429 storm once STORM_AT of the files have ended
    soak.py report SAMPLES MANIFEST EVENTS FILES CF_URL S3_URL STATUS
                                       check and print the figures; exit 1 on a failed check

Standard library only, plus ffmpeg for the photos, PNGs and videos (one ffmpeg start per size
makes hundreds of different frames, far faster than one vips start per file).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from minipdf import minimal_pdf  # noqa: E402

STORM = 24              # 429 answers in the storm: three waves of 8 uploads in flight, under 8 tries
STORM_RETRY_AFTER = 2   # seconds each one asks for
RESET_RATE, SERVER_ERROR_RATE = 0.05, 0.02
# Growth between the first and the last quarter of the run that fails the soak: both the ratio
# and the absolute step must be passed, so small counts do not trip it on noise.
FD_GROWTH, FD_STEP = 1.25, 10
RSS_GROWTH, RSS_STEP_MIB = 1.30, 25


def post(url: str, body) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def get(url: str):
    with urllib.request.urlopen(url, timeout=120) as response:
        return json.loads(response.read())


# ----------------------------------------------------------------------------- course

def course(root: str, files: int) -> None:
    """About 68 % JPEG photos (four sizes, 5 % of them avatars), 12 % PNG diagrams, 18 % PDFs,
    a few short videos; 100 files per lesson folder; every file's bytes differ."""
    videos = min(5, max(1, files // 60))
    pdfs, pngs = files * 18 // 100, files * 12 // 100
    jpegs = files - videos - pdfs - pngs
    avatars = jpegs // 20
    os.makedirs(root, exist_ok=True)
    frames = os.path.join(root, ".frames")
    os.makedirs(frames, exist_ok=True)

    def ffmpeg(*args: str) -> None:
        subprocess.run(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)

    # JPEG photos in four shapes, one ffmpeg start each; grain so that they compress like photos.
    shapes = ["1600x1200", "1200x900", "900x1200", "800x600"]
    per = [jpegs // 4 + (1 if i < jpegs % 4 else 0) for i in range(4)]
    for i, (size, count) in enumerate(zip(shapes, per)):
        if count:
            ffmpeg("-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25",
                   "-vf", f"noise=alls=16:allf=t+u:all_seed={i + 1}", "-frames:v", str(count), "-q:v", "4",
                   os.path.join(frames, f"j{i}-%05d.jpg"))
    if pngs:
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=640x400:rate=25", "-frames:v", str(pngs), "-pix_fmt", "rgb24",
               os.path.join(frames, "p-%05d.png"))
    jpeg_frames = sorted(f for f in os.listdir(frames) if f.endswith(".jpg"))
    png_frames = sorted(f for f in os.listdir(frames) if f.endswith(".png"))
    if len(jpeg_frames) != jpegs or len(png_frames) != pngs:
        sys.exit(f"soak: ffmpeg made {len(jpeg_frames)} JPEGs and {len(png_frames)} PNGs, wanted {jpegs} and {pngs}")

    def lesson(i: int) -> str:
        folder = os.path.join(root, "lessons", f"{i // 100:03d}")
        os.makedirs(folder, exist_ok=True)
        return folder

    n = 0
    for i, name in enumerate(jpeg_frames):
        if i < avatars:
            os.makedirs(os.path.join(root, "avatars"), exist_ok=True)
            target = os.path.join(root, "avatars", f"avatar-{i:05d}.jpg")
        else:
            sub = "thumbnails" if i % 3 == 0 else "photos"
            os.makedirs(os.path.join(lesson(n), sub), exist_ok=True)
            target = os.path.join(lesson(n), sub, f"photo-{i:05d}.jpg")
        os.replace(os.path.join(frames, name), target)
        n += 1
    for i, name in enumerate(png_frames):
        os.makedirs(os.path.join(lesson(n), "diagrams"), exist_ok=True)
        os.replace(os.path.join(frames, name), os.path.join(lesson(n), "diagrams", f"diagram-{i:05d}.png"))
        n += 1
    for i in range(pdfs):
        folder = os.path.join(root, "attachments") if i % 5 == 0 else lesson(n)
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"handout-{i:05d}.pdf"), "wb") as out:
            out.write(minimal_pdf(b"Soak handout %d: one page of Helvetica." % i))
        n += 1
    os.makedirs(os.path.join(root, "videos"), exist_ok=True)
    for i in range(videos):
        ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-t", str(1 + i), "-pix_fmt", "yuv420p",
               "-c:v", "libx264", "-preset", "veryfast", "-crf", "30", "-threads", "1",
               os.path.join(root, "videos", f"clip-{i}.mp4"))
    os.rmdir(frames)
    made = sum(len(names) for _, _, names in os.walk(root))
    if made != files:
        sys.exit(f"soak: the course holds {made} files, wanted {files}")
    print(f"soak: course of {files}: {jpegs} JPEGs ({avatars} avatars), {pngs} PNGs, {pdfs} PDFs, {videos} videos",
          file=sys.stderr)


# ----------------------------------------------------------------------------- faults

def faults(cf: str, s3: str, seed: int) -> None:
    """5 % connection resets and 2 % 5xx on every API request of both fakes, for the whole run."""
    def steady(method: str, path: str, base_seed: int, errors: list[dict]) -> list[dict]:
        return [{"method": method, "path": path, "probability": RESET_RATE, "seed": base_seed, "repeat": True,
                 "actions": [{"reset_after_bytes": 256}]},
                {"method": method, "path": path, "probability": SERVER_ERROR_RATE, "seed": base_seed + 1,
                 "repeat": True, "actions": errors}]
    post(cf + "/__fake/faults", {"rules": steady("*", "^/client/v4/accounts/", seed,
                                                 [{"status": 500}, {"status": 502}, {"status": 503}])})
    post(s3 + "/__fake/faults", {"rules": steady("", "^/", seed + 10,
                                                 [{"status": 500, "code": "InternalError"},
                                                  {"status": 503, "code": "ServiceUnavailable"}])})


# ----------------------------------------------------------------------------- watch

def proc_status(pid: int) -> dict[str, str] | None:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return None
    return {k: v.strip() for k, v in fields.items()}


def children(pid: int) -> list[int]:
    """The tool's child processes (its decoder workers), whose descriptors and memory count as its own."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            status = proc_status(int(name))
            if status and status.get("PPid") == str(pid):
                found.append(int(name))
    return found


def watch(pid: int, events: str, files: int, cf: str, samples: str, storm_at: float) -> None:
    started, storm_sent, ended, offset = time.monotonic(), False, 0, 0
    with open(samples, "w", encoding="utf-8") as out:
        out.write("seconds\tended\tfds\trss_kib\thwm_kib\tthreads\n")
        while True:
            status = proc_status(pid)
            if status is None or status.get("State", "").startswith(("Z", "X")):
                break
            try:
                fds = len(os.listdir(f"/proc/{pid}/fd"))
            except OSError:
                break
            if os.path.exists(events):
                with open(events, "rb") as f:
                    f.seek(offset)
                    chunk = f.read()
                complete = chunk[:chunk.rfind(b"\n") + 1]
                offset += len(complete)
                ended += complete.count(b'"event":"asset"')
            rss, hwm = int(status.get("VmRSS", "0 kB").split()[0]), int(status.get("VmHWM", "0 kB").split()[0])
            for child in children(pid):
                child_status = proc_status(child)
                try:
                    fds += len(os.listdir(f"/proc/{child}/fd"))
                except OSError:
                    continue
                if child_status:
                    rss += int(child_status.get("VmRSS", "0 kB").split()[0])
                    hwm += int(child_status.get("VmHWM", "0 kB").split()[0])
            out.write(f"{time.monotonic() - started:.1f}\t{ended}\t{fds}\t{rss}\t{hwm}\t{status.get('Threads', '0')}\n")
            out.flush()
            if not storm_sent and ended >= storm_at * files:
                storm = [{"status": 429, "code": 971, "headers": {"Retry-After": str(STORM_RETRY_AFTER)}}] * STORM
                post(cf + "/__fake/faults", {"rules": [{"method": "POST", "path": r"/images/v1$", "actions": storm}]})
                storm_sent = True
                print(f"soak: {ended} of {files} files ended at {time.monotonic() - started:.0f} s: "
                      f"a storm of {STORM} 429s (Retry-After: {STORM_RETRY_AFTER}) on Images uploads", file=sys.stderr)
            time.sleep(1)


# ----------------------------------------------------------------------------- report

def report(samples_path: str, manifest: str, events: str, files: int, cf: str, s3: str, status: int) -> int:
    problems: list[str] = []
    rows = [json.loads(line) for line in open(manifest, encoding="utf-8")] if os.path.exists(manifest) else []
    sources = [r.get("source") for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r.get("status")] = counts.get(r.get("status"), 0) + 1
    if len(rows) != files or len(set(sources)) != files:
        problems.append(f"the manifest has {len(rows)} rows for {len(set(sources))} sources, not {files}")
    not_terminal = [r for r in rows if r.get("status") not in ("uploaded", "unchanged", "rejected", "skipped", "failed")]
    for r in not_terminal[:10]:
        problems.append(f"not in a terminal state: {json.dumps(r)[:300]}")
    if len(not_terminal) > 10:
        problems.append(f"... {len(not_terminal) - 10} more rows not in a terminal state")
    # With 8 tries per request, 7 % faults leave a request failing every try once in ~2 million:
    # a failed or rejected file is a finding, not noise.
    for r in [r for r in rows if r.get("status") in ("failed", "rejected")][:10]:
        problems.append(f"{r.get('status')}: {r.get('source')} ({r.get('reason')})")
    if status not in (0,):
        problems.append(f"media-pipeline exited {status}")

    # Retries: the rows carry result.retries; the summary line carries the totals by status.
    retries: dict[str, int] = {}
    summary = None
    for line in open(events, encoding="utf-8"):
        event = json.loads(line)
        if event.get("event") == "asset" and event.get("sink"):
            retries[event["sink"]] = retries.get(event["sink"], 0) + int((event.get("result") or {}).get("retries", 0))
        elif event.get("event") == "summary":
            summary = event
    if summary is None:
        problems.append("no summary line in the --json output")

    fired = [(r.get("path"), r.get("fired"), r.get("actions")) for r in get(cf + "/__fake/faults")["rules"]]
    s3_fired = [(r.get("path"), r.get("fired")) for r in get(s3 + "/__fake/faults")]
    storm_left = [len(a) for p, f, a in fired if f is None and p.endswith("/images/v1$")]
    if not storm_left:
        problems.append("the 429 storm was never sent (the run ended before the watcher saw enough files end)")

    samples = [line.rstrip("\n").split("\t") for line in open(samples_path, encoding="utf-8")][1:]
    samples = [(float(t), int(e), int(fd), int(rss), int(hwm), int(th)) for t, e, fd, rss, hwm, th in samples]
    if len(samples) < 8:
        problems.append(f"only {len(samples)} samples: the run was too short to judge growth")
    else:
        span = samples[-1][0]

        def at(fraction: float):
            return min(samples, key=lambda s: abs(s[0] - fraction * span))

        def quarter(lo: float, hi: float, index: int) -> float:
            return statistics.median(s[index] for s in samples if lo * span <= s[0] <= hi * span)

        print("| point | time s | files ended | open fds | RSS MiB | threads |")
        print("|---|---|---|---|---|---|")
        for label, fraction in (("10 %", 0.1), ("50 %", 0.5), ("90 %", 0.9)):
            t, e, fd, rss, _, th = at(fraction)
            print(f"| {label} | {t:.0f} | {e} | {fd} | {rss / 1024:.1f} | {th} |")
        peak_fd = max(s[2] for s in samples)
        peak_rss = max(max(s[3] for s in samples), max(s[4] for s in samples))
        print(f"| peak | | | {peak_fd} | {peak_rss / 1024:.1f} (VmHWM) | {max(s[5] for s in samples)} |")
        fd_first, fd_last = quarter(0, 0.25, 2), quarter(0.75, 1, 2)
        rss_first, rss_last = quarter(0, 0.25, 3) / 1024, quarter(0.75, 1, 3) / 1024
        print(f"\nmedian open fds: first quarter {fd_first:.0f}, last quarter {fd_last:.0f}; "
              f"median RSS: first quarter {rss_first:.1f} MiB, last quarter {rss_last:.1f} MiB")
        if fd_last > fd_first * FD_GROWTH and fd_last - fd_first > FD_STEP:
            problems.append(f"open fds grew from {fd_first:.0f} to {fd_last:.0f} (a leak?)")
        if rss_last > rss_first * RSS_GROWTH and rss_last - rss_first > RSS_STEP_MIB:
            problems.append(f"RSS grew from {rss_first:.1f} MiB to {rss_last:.1f} MiB (a leak?)")

    print(f"\nfiles: {files}, exit {status}, statuses {counts}")
    if summary:
        print(f"summary: {summary.get('files')} files in {summary.get('ms', 0) / 1000:.0f} s, "
              f"status {summary.get('status')}, sinks {json.dumps(summary.get('sinks'))}")
    print(f"retries (sum of result.retries in the asset events, by sink): {retries}")
    print(f"faults fired: Cloudflare fake {[(p, f) for p, f, _ in fired if f is not None]}, "
          f"S3 fake {s3_fired}; 429 storm: {STORM - storm_left[0] if storm_left else 0} of {STORM} answered")
    if problems:
        print("\nsoak: FAILED:\n  " + "\n  ".join(problems), file=sys.stderr)
        return 1
    print("\nsoak: ok")
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 3 and argv[0] == "course":
        course(argv[1], int(argv[2]))
    elif len(argv) == 4 and argv[0] == "faults":
        faults(argv[1], argv[2], int(argv[3]))
    elif len(argv) >= 6 and argv[0] == "watch":
        storm_at = float(argv[argv.index("--storm-at") + 1]) if "--storm-at" in argv else 0.3
        watch(int(argv[1]), argv[2], int(argv[3]), argv[4], argv[5], storm_at)
    elif len(argv) == 8 and argv[0] == "report":
        return report(argv[1], argv[2], argv[3], int(argv[4]), argv[5], argv[6], int(argv[7]))
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
