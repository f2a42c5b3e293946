#!/usr/bin/env python3
"""Kills the real binary with SIGKILL at random moments of an import, reruns it until a run
finishes, and checks that nothing was lost or done twice.

    python3 Tests/Harness/random_kill.py [--rounds N | --long] [--seed S] [--binary PATH]
        [--latency SECONDS] [--work DIR] [--keep]

It builds the example course (examples/make-course.sh) plus one 16 MiB PDF and one 16 MiB video,
so that R2 uploads it in 5 MiB parts and Stream takes it in 5 MiB tus chunks, and imports the
course folder and the course zip together (the zip's files share their bytes with the folder's).
It starts the local servers itself on free 127.0.0.1 ports: Tests/Fakes/cloudflare_fake.py
(Images, Stream), Tests/Fakes/s3_server.py (R2) and Tests/Fakes/webhook_receiver.py (the
notify.webhook stage, added by a pipeline overlay). Every upload request is held back --latency
seconds (default 0.05) so that kills land while requests are in flight.

Round 0 imports once without a kill; its outcome is the expected one. Then each round starts
from empty fakes and a fresh journal, starts the import 1 to 3 times (drawn from the seed) and
kills each start at a moment drawn from the seed (between 5 % and 95 % of a clean run's length),
then reruns without a kill until a run ends with 0 or 1 (exit 5, events still undelivered, is
run again). When the first start of a round ends before its kill, its length becomes the clean
run's length and the round starts again (up to three times), so that slow first runs do not leave
rounds without a kill. After the round:

  * the final manifest and the journal hold every source exactly once, in a terminal state that
    matches round 0 (uploaded or unchanged where round 0 uploaded, the same reason where it
    rejected), every rendition is done and every outbox event delivered;
  * the fakes hold exactly the expected objects: the Images ids, R2 keys and Stream videos the
    manifest names and round 0 had, no more (no duplicate); no open multipart upload; every tus
    upload complete; every R2 object's bytes match its x-amz-meta-sha256;
  * the receiver processed one event per source, of the type its status calls for, every
    delivery carried a valid signature, and no source was announced under two ids;
  * PRAGMA integrity_check answers ok on the journal after every kill (on a copy, so that the
    check does not recover the journal for the tool) and at the end.

Prints the seed, one line per round and a summary. Exits 1 with the evidence on any violation,
2 on a setup problem. The moments come from the seed, but what a run has done by a moment
depends on the machine, so a seed reproduces the draws, not the exact interleaving.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TOKEN = "harness-token-0123456789abcdef"
ACCOUNT = "0123456789abcdef0123456789abcdef"
SECRET = "whsec_" + base64.b64encode(bytes((i * 11 + 3) % 256 for i in range(32))).decode()
CHUNK = 5 * 1024 * 1024
DONE = {"uploaded", "unchanged"}
TERMINAL = {"uploaded", "unchanged", "rejected", "skipped", "failed"}


class SetupError(Exception):
    """The harness could not prepare what it tests with (exit 2)."""


# ----------------------------------------------------------------------------- helpers

def http(method: str, url: str, body=None, timeout: float = 60):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        raw = response.read()
    return json.loads(raw) if raw.strip() else None


def pseudo_random_bytes(size: int, seed: int) -> bytes:
    """Varied bytes (no compression, no repeats), fast: a seeded generator's 64-bit words."""
    rng = random.Random(seed)
    return rng.getrandbits(size * 8).to_bytes(size, "little")


def big_pdf(path: str, size: int) -> None:
    """A file libmagic takes for a PDF (so it goes to R2), with varied content."""
    head, tail = b"%PDF-1.4\n", b"\n%%EOF\n"
    with open(path, "wb") as out:
        out.write(head + pseudo_random_bytes(size - len(head) - len(tail), 7) + tail)


def fake_mp4(path: str, size: int) -> None:
    """An MP4 header libmagic recognises, then varied bytes in an mdat box (so it goes to Stream)."""
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    payload = size - len(head) - 8
    with open(path, "wb") as out:
        out.write(head + (payload + 8).to_bytes(4, "big") + b"mdat" + pseudo_random_bytes(payload, 11))


def integrity(path: str) -> str:
    """PRAGMA integrity_check of a journal, opened read-only."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return connection.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        connection.close()


def integrity_of_copy(journal: str, scratch: str) -> str:
    """The check on a copy, so that reading does not replay the WAL the tool must replay itself."""
    shutil.rmtree(scratch, ignore_errors=True)
    os.makedirs(scratch)
    copy = os.path.join(scratch, "journal.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(journal + suffix):
            shutil.copyfile(journal + suffix, copy + suffix)
    if not os.path.exists(copy):
        return "no journal file"
    return integrity(copy)


# ----------------------------------------------------------------------------- servers

class Server:
    """A fake from Tests/Fakes/, started as a child; READY line read with a deadline."""

    def __init__(self, name: str, args: list[str], work: str, timeout: float = 120):
        self.name = name
        self.log_path = os.path.join(work, f"{name}.log")
        self.ready_path = os.path.join(work, f"{name}.ready")
        with open(self.ready_path, "wb") as out, open(self.log_path, "wb") as err:
            self.process = subprocess.Popen([sys.executable, os.path.join(REPO, "Tests", "Fakes", args[0]), *args[1:]],
                                            stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.ready_path, encoding="utf-8") as ready:
                line = ready.readline()
            if line.startswith("READY ") and line.endswith("\n"):
                self.ready = line[len("READY "):].strip()
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise SetupError(f"{name} did not start; its stderr:\n{open(self.log_path, encoding='utf-8', errors='replace').read()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Fakes:
    def __init__(self, work: str, latency: float):
        self.servers: list[Server] = []
        self.latency = latency
        try:
            cf = self.start("cloudflare", ["cloudflare_fake.py", "--token", TOKEN, "--account", ACCOUNT,
                                           "--data-dir", os.path.join(work, "cloudflare-data"), "--ready-after", "0"], work)
            s3 = self.start("s3", ["s3_server.py", "--bucket", "media"], work)
            hook = self.start("webhook", ["webhook_receiver.py", "--secret", SECRET], work)
        except BaseException:
            self.stop()
            raise
        self.cf = f"http://127.0.0.1:{int(cf.ready)}"
        s3_ready = json.loads(s3.ready)
        self.s3, self.bucket = s3_ready["endpoint"], s3_ready["bucket"]
        self.hook = f"http://127.0.0.1:{int(hook.ready)}"
        self.environment = {
            "CLOUDFLARE_API_BASE_URL": self.cf + "/client/v4", "CLOUDFLARE_ACCOUNT_ID": ACCOUNT,
            "CLOUDFLARE_API_TOKEN": TOKEN, "CLOUDFLARE_R2_ENDPOINT": self.s3,
            "CLOUDFLARE_R2_BUCKET_NAME": s3_ready["bucket"], "CLOUDFLARE_R2_ACCESS_KEY_ID": s3_ready["access_key_id"],
            "CLOUDFLARE_R2_SECRET_ACCESS_KEY": s3_ready["secret_access_key"],
            "NOTIFY_URL": self.hook + "/hooks/media", "NOTIFY_SECRET": SECRET,
        }

    def start(self, name, args, work) -> Server:
        server = Server(name, args, work)
        self.servers.append(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def check_alive(self) -> None:
        for server in self.servers:
            if server.process.poll() is not None:
                raise SetupError(f"the {server.name} fake exited ({server.process.returncode}); its stderr:\n"
                                 + open(server.log_path, encoding="utf-8", errors="replace").read()[-3000:])

    def reset(self) -> None:
        """Nothing stored, nothing logged, nothing received; then the latency on every upload request."""
        self.check_alive()
        http("POST", self.cf + "/__fake/reset")
        http("POST", self.s3 + "/__fake/reset")
        http("POST", self.s3 + "/__fake/empty")
        http("POST", self.hook + "/__fake/reset")
        if self.latency > 0:
            hold = [{"delay": self.latency}]
            http("POST", self.cf + "/__fake/faults", {"rules": [
                {"method": "POST", "path": r"/(images/v1|stream)$", "actions": hold, "repeat": True},
                {"method": "PATCH", "path": r"/stream/tus/", "actions": hold, "repeat": True}]})
            http("POST", self.s3 + "/__fake/faults", {"rules": [
                {"method": "PUT", "path": "^/", "actions": hold, "repeat": True},
                {"method": "POST", "path": "^/", "actions": hold, "repeat": True}]})

    def remote(self) -> dict:
        cf = http("GET", self.cf + "/__fake/state")
        return {"images": cf["images"], "videos": cf["videos"], "bucket": self.bucket,
                "objects": http("GET", self.s3 + "/__fake/objects"),
                "multipart": http("GET", self.s3 + "/__fake/multipart"),
                "s3_log": http("GET", self.s3 + "/__fake/log"),
                "cf_log": http("GET", self.cf + "/__fake/log"),
                "hooks": http("GET", self.hook + "/__fake/state")}


# ----------------------------------------------------------------------------- the course

def build_course(work: str) -> tuple[list[str], list[str]]:
    """The example course (folder and zip) plus a big PDF and a big video in the folder.
    Returns the inputs and every source name the tool must report."""
    course = os.path.join(work, "course")
    made = subprocess.run(["bash", os.path.join(REPO, "examples", "make-course.sh"), course],
                          capture_output=True, text=True)
    if made.returncode != 0:
        raise SetupError(f"examples/make-course.sh failed ({made.returncode}):\n{made.stderr[-3000:]}")
    os.makedirs(os.path.join(course, "lessons", "03-long"), exist_ok=True)
    big_pdf(os.path.join(course, "lessons", "03-long", "reading-pack.pdf"), 3 * CHUNK + 12_345)
    fake_mp4(os.path.join(course, "videos", "02-long.mp4"), 3 * CHUNK + 4_321)
    sources = [os.path.join(d, f) for d, _, names in os.walk(course) for f in names]
    with zipfile.ZipFile(course + ".zip") as z:
        sources += [f"{course}.zip!/{name}" for name in z.namelist() if not name.endswith("/")]
    return [course, course + ".zip"], sorted(sources)


def write_overlay(work: str) -> str:
    """Small parts and chunks, fast retries, no API budget in the way, and the webhook step."""
    overlay = {
        "limits": {"apiRequestsPer5Min": 1_000_000, "retry": {"baseDelay": "20ms", "maxDelay": "200ms"}},
        "stages": [
            {"name": "r2", "options": {"multipartThreshold": "6MB", "partSize": "5MiB"}},
            {"name": "stream", "options": {"basicThreshold": "1KB", "chunkSize": "5MiB"}},
            {"name": "notify", "kind": "notify.webhook",
             "options": {"url": "${NOTIFY_URL}", "secret": "${NOTIFY_SECRET}", "timeout": "1s",
                         "maxDelay": "300ms", "flushTimeout": "20s"}},
        ],
    }
    path = os.path.join(work, "overlay.json")
    with open(path, "w", encoding="utf-8") as out:
        json.dump(overlay, out, indent=1)
    return path


# ----------------------------------------------------------------------------- one run

class Run:
    """One start of the binary, in its own process group, output to files."""

    # The start in progress, killed if the harness itself stops (it is in a session of its own).
    current: "Run | None" = None

    def __init__(self, binary: str, args: list[str], env: dict, work: str, label: str):
        self.out_path = os.path.join(work, f"{label}.out")
        self.err_path = os.path.join(work, f"{label}.err")
        self.started = time.monotonic()
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.process = subprocess.Popen([binary, *args], stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                            env=env, cwd=work, start_new_session=True)
        Run.current = self

    def kill_at(self, moment: float) -> bool:
        """SIGKILL to the whole group at `moment` s after the start; False if the run ended first."""
        try:
            self.process.wait(timeout=max(0.0, moment - (time.monotonic() - self.started)))
            return False
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        return self.process.returncode == -signal.SIGKILL

    def wait(self, timeout: float) -> int | None:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            return None

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def stderr_tail(self, lines: int = 15) -> str:
        text = open(self.err_path, encoding="utf-8", errors="replace").read().splitlines()
        return "\n".join("    " + line for line in text[-lines:])


# ----------------------------------------------------------------------------- checks

def read_manifest(path: str, problems: list[str]) -> dict[str, dict]:
    rows: dict[str, dict] = {}
    if not os.path.exists(path):
        problems.append(f"no manifest at {path}")
        return rows
    for number, line in enumerate(open(path, encoding="utf-8"), 1):
        try:
            row = json.loads(line)
        except ValueError:
            problems.append(f"manifest line {number} is not JSON: {line[:200]!r}")
            continue
        if row.get("source") in rows:
            problems.append(f"manifest: {row.get('source')} appears twice: {rows[row['source']]} and {row}")
        rows[row.get("source")] = row
    return rows


def result_name(row: dict) -> str | None:
    result = row.get("result") or {}
    return result.get("key") if row.get("sink") == "r2" else result.get("id")


def outcome(row: dict) -> tuple:
    """What must be the same in every round: done or not, why not, where it went, under which name
    (Stream ids are drawn by the provider, so only the sink counts there)."""
    status = "done" if row.get("status") in DONE else row.get("status")
    name = None if row.get("sink") == "stream" else result_name(row)
    return status, row.get("reason"), row.get("sink"), name


def check_round(sources: list[str], manifest: dict[str, dict], journal: str, remote: dict,
                expected: dict[str, tuple] | None, runs_finished: int, runs_started: int) -> list[str]:
    problems: list[str] = []
    wanted = set(sources)

    # Every source once, in a terminal state, as in round 0.
    missing, extra = wanted - manifest.keys(), manifest.keys() - wanted
    if missing:
        problems.append(f"manifest: {len(missing)} sources missing: {sorted(missing)[:5]}")
    if extra:
        problems.append(f"manifest: rows for sources that do not exist: {sorted(extra)[:5]}")
    for source, row in sorted(manifest.items()):
        if row.get("status") not in TERMINAL - {"failed"}:
            problems.append(f"manifest: {source} ended {row.get('status')} ({row.get('reason')}): {json.dumps(row)[:400]}")
        elif expected is not None and source in expected and outcome(row) != expected[source]:
            problems.append(f"manifest: {source} ended as {outcome(row)}, round 0 as {expected[source]}")

    # The journal agrees, and holds nothing half done.
    try:
        check = integrity(journal)
        if check != "ok":
            problems.append(f"journal: PRAGMA integrity_check = {check!r}")
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True)
        try:
            journaled = dict(db.execute("SELECT source, status FROM sources").fetchall())
            started = db.execute("SELECT key, sink, remote FROM renditions WHERE state <> 'done'").fetchall()
            undelivered = db.execute("SELECT id, type, source, state, attempts, last_error FROM outbox "
                                     "WHERE state <> 'delivered'").fetchall()
            outbox_ids = [r[0] for r in db.execute("SELECT id FROM outbox").fetchall()]
        finally:
            db.close()
        if set(journaled) != wanted:
            problems.append(f"journal: sources missing {sorted(wanted - set(journaled))[:5]}, "
                            f"unknown {sorted(set(journaled) - wanted)[:5]}")
        for source, status in sorted(journaled.items()):
            if status not in TERMINAL - {"failed"}:
                problems.append(f"journal: {source} is {status}")
            elif source in manifest and (status in DONE) != (manifest[source].get("status") in DONE):
                problems.append(f"journal: {source} is {status}, the manifest says {manifest[source].get('status')}")
        for key, sink, saved in started:
            problems.append(f"journal: rendition {key} ({sink}) never completed; saved remote state {saved}")
        for row in undelivered:
            problems.append(f"journal: outbox event {row} not delivered")
        if len(outbox_ids) != len(set(outbox_ids)):
            problems.append("journal: an outbox id appears twice")
    except sqlite3.Error as err:
        problems.append(f"journal: cannot read {journal}: {err}")

    # The remote side: exactly what the manifest names, nothing twice, nothing half done.
    rows = manifest.values()
    images = {result_name(r) for r in rows if r.get("sink") == "cloudflare-images" and r.get("status") in DONE}
    keys = {result_name(r) for r in rows if r.get("sink") == "r2" and r.get("status") in DONE}
    videos = {result_name(r) for r in rows if r.get("sink") == "stream" and r.get("status") in DONE}
    if set(remote["images"]) != images:
        problems.append(f"Images: holds {sorted(set(remote['images']) - images)[:5]} that no row names, "
                        f"lacks {sorted(images - set(remote['images']))[:5]}")
    drafts = [i for i, image in remote["images"].items() if image.get("draft")]
    if drafts:
        problems.append(f"Images: drafts left: {drafts[:5]}")
    if set(remote["objects"]) != keys:
        problems.append(f"R2: holds {sorted(set(remote['objects']) - keys)[:5]} that no row names, "
                        f"lacks {sorted(keys - set(remote['objects']))[:5]}")
    for key, facts in sorted(remote["objects"].items()):
        if facts.get("sha256") != facts.get("metadata", {}).get("sha256"):
            problems.append(f"R2: {key} holds bytes with sha256 {facts.get('sha256')}, "
                            f"its x-amz-meta-sha256 says {facts.get('metadata', {}).get('sha256')}")
    for upload in remote["multipart"]:
        # The evidence: every CreateMultipartUpload of that key, and the uploads its parts went to.
        key_path = "/" + remote["bucket"] + "/" + upload["key"]
        creates = [e.get("status") for e in remote["s3_log"] if e["method"] == "POST" and e["path"] == key_path
                   and (e.get("query") or "") == "uploads"]
        used = sorted({q.split("uploadId=")[1].split("&")[0][:12] + "…" for e in remote["s3_log"]
                       if e["path"] == key_path and "uploadId=" in (q := e.get("query") or "")})
        problems.append(f"R2: multipart upload {upload['uploadId'][:12]}… of {upload['key']} left open (an orphan): "
                        f"{len(creates)} CreateMultipartUpload requests for the key (statuses {creates}), "
                        f"later requests used uploads {used}")
    if set(remote["videos"]) != videos:
        extra_videos = {uid: (v["offset"], v["length"], v["kind"]) for uid, v in remote["videos"].items() if uid not in videos}
        creations = sum(1 for e in remote["cf_log"] if e["method"] == "POST" and e["path"].endswith("/stream")
                        and "tus-resumable" in e.get("headers", {}))
        problems.append(f"Stream: videos no row names (offset, length, kind): {extra_videos}; "
                        f"named but missing: {sorted(videos - set(remote['videos']))}; "
                        f"{creations} tus creation requests in all")
    for uid, video in sorted(remote["videos"].items()):
        if video["offset"] != video["length"] or video["length"] == 0:
            problems.append(f"Stream: upload {uid} incomplete: {video['offset']} of {video['length']} bytes")
        if video.get("chunk_violations"):
            problems.append(f"Stream: {uid} got chunks against the rules: {video['chunk_violations']}")
    if expected is not None:
        expected_names = {sink: {o[3] for o in expected.values() if o[0] == "done" and o[2] == sink}
                          for sink in ("cloudflare-images", "r2")}
        if set(remote["images"]) != expected_names["cloudflare-images"]:
            problems.append(f"Images: ids differ from round 0's: {sorted(set(remote['images']) ^ expected_names['cloudflare-images'])[:5]}")
        if set(remote["objects"]) != expected_names["r2"]:
            problems.append(f"R2: keys differ from round 0's: {sorted(set(remote['objects']) ^ expected_names['r2'])[:5]}")
        # Both copies of the short video share one upload; the long one has its own.
        video_contents = {r.get("sha256") for r in rows if r.get("sink") == "stream" and r.get("status") in DONE}
        if len(remote["videos"]) != len(video_contents) or not video_contents:
            problems.append(f"Stream: {len(remote['videos'])} videos for {len(video_contents)} distinct contents")

    # Notifications: one processed event per source, of the right type, under one id.
    hooks = remote["hooks"]
    bad = [d for d in hooks["deliveries"] if not d.get("verified")]
    if bad:
        problems.append(f"webhook: deliveries without a valid signature: {bad[:3]}")
    per_source: dict[str, list[tuple[str, str]]] = collections.defaultdict(list)
    batches = 0
    for msg_id, event in hooks["processed"].items():
        if event.get("type") == "batch.completed":
            batches += 1
        else:
            per_source[event.get("data", {}).get("source")].append((msg_id, event.get("type")))
    for source in sorted(wanted):
        events = per_source.get(source, [])
        want = "asset.rejected" if manifest.get(source, {}).get("status") == "rejected" else "asset.uploaded"
        if not events:
            problems.append(f"webhook: no event processed for {source} (lost notification)")
        elif len(events) > 1:
            problems.append(f"webhook: {source} announced under {len(events)} ids: {events}")
        elif events[0][1] != want:
            problems.append(f"webhook: {source} announced as {events[0][1]}, its status calls for {want}")
    strangers = set(per_source) - wanted
    if strangers:
        problems.append(f"webhook: events for unknown sources {sorted(map(str, strangers))[:5]}")
    if not runs_finished <= batches <= runs_started:
        problems.append(f"webhook: {batches} batch.completed events for {runs_finished} finished runs "
                        f"out of {runs_started}")
    return problems


# ----------------------------------------------------------------------------- rounds

def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, help="rounds with kills (default 10, or 50 with --long)")
    parser.add_argument("--long", action="store_true", help="50 rounds")
    parser.add_argument("--seed", type=int, help="seed of every draw (default: a fresh one, printed)")
    parser.add_argument("--binary", default=os.environ.get("MP") or os.path.join(REPO, ".build", "release", "media-pipeline"),
                        help="the media-pipeline binary (default: $MP, else .build/release/media-pipeline)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds each upload request is held (default 0.05)")
    parser.add_argument("--work", help="work folder (default: a new temporary folder, removed unless --keep)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (50 if args.long else 10)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"random-kill: no executable binary at {binary} (build it, or set MP / --binary)", file=sys.stderr)
        return 2
    work = os.path.abspath(args.work) if args.work else tempfile.mkdtemp(prefix="mp-random-kill-")
    os.makedirs(work, exist_ok=True)
    print(f"random-kill: seed {seed}, {rounds} rounds, binary {binary}, work {work}", flush=True)
    rng = random.Random(seed)
    began = time.monotonic()
    fakes = None
    try:
        inputs, sources = build_course(work)
        overlay = write_overlay(work)
        fakes = Fakes(work, args.latency)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": work, **fakes.environment}
        journal, manifest = os.path.join(work, "journal.db"), os.path.join(work, "manifest.jsonl")
        command = ["run", *inputs, "--pipeline", os.path.join(REPO, "pipeline.json"), "--pipeline", overlay,
                   "--journal", journal, "--manifest", manifest, "--json"]
        print(f"random-kill: {len(sources)} sources in {inputs[0]} and {os.path.basename(inputs[1])}; "
              f"fakes ready in {time.monotonic() - began:.1f} s", flush=True)

        def fresh_round() -> None:
            fakes.reset()
            for suffix in ("", "-wal", "-shm", "-journal"):
                if os.path.exists(journal + suffix):
                    os.unlink(journal + suffix)
            if os.path.exists(manifest):
                os.unlink(manifest)

        # Round 0: the expected outcome, and proof that the setup exercises what it should.
        fresh_round()
        base = Run(binary, command, env, work, "round-0")
        status = base.wait(timeout=600)
        baseline_seconds = base.seconds
        if status not in (0, 1):
            print(f"random-kill: round 0 (no kill) exited {status}:\n{base.stderr_tail()}", file=sys.stderr)
            return 1
        problems: list[str] = []
        rows = read_manifest(manifest, problems)
        remote = fakes.remote()
        problems += check_round(sources, rows, journal, remote, None, 1, 1)
        parts = sum(1 for e in remote["s3_log"] if e["method"] == "PUT" and "partNumber=" in (e.get("query") or ""))
        patches = sum(1 for e in remote["cf_log"] if e["method"] == "PATCH")
        if parts < 3 or patches < 3:
            problems.append(f"round 0 sent {parts} R2 part PUTs and {patches} tus PATCHes: the course no longer "
                            f"exercises multipart and multi-chunk uploads")
        if problems:
            print("random-kill: round 0 (no kill) already fails:\n  " + "\n  ".join(problems), file=sys.stderr)
            return 1
        expected = {source: outcome(row) for source, row in rows.items()}
        done = sum(1 for o in expected.values() if o[0] == "done")
        print(f"round 0: no kill, exit {status} in {baseline_seconds:.1f} s: {done} done, "
              f"{len(expected) - done} rejected; {len(remote['images'])} images, {len(remote['objects'])} R2 objects "
              f"({parts} parts), {len(remote['videos'])} videos ({patches} PATCHes), "
              f"{len(remote['hooks']['processed'])} events", flush=True)

        failures, kills_total, reruns_total, kill_spots, redraws = 0, 0, 0, [], 0
        for number in range(1, rounds + 1):
            round_began = time.monotonic()
            for attempt in range(3):
                fresh_round()
                planned = rng.choices([1, 2, 3], weights=[5, 3, 2])[0]
                moments = [round(rng.uniform(0.05, 0.95) * baseline_seconds, 3) for _ in range(planned)]
                landed, started, finished, problems, statuses, rerun_seconds = [], 0, 0, [], [], []
                for k, moment in enumerate(moments):
                    run = Run(binary, command, env, work, f"round-{number}-kill-{k + 1}")
                    started += 1
                    if run.kill_at(moment):
                        landed.append(moment)
                        check = integrity_of_copy(journal, os.path.join(work, "copy"))
                        if check != "ok":
                            problems.append(f"journal after the kill at {moment} s: integrity_check = {check!r}")
                    else:
                        finished += 1
                        statuses.append(run.process.returncode)
                        if run.process.returncode not in (0, 1, 5):
                            problems.append(f"run {k + 1} ended {run.process.returncode} before its kill:\n{run.stderr_tail()}")
                        break
                if landed or problems:
                    break
                # The first start, from nothing, ended before its kill: round 0 was slower than the
                # runs are now (a cold cache, a busier machine). That run is a truer clean run: draw
                # from its length and start the round again.
                baseline_seconds = min(baseline_seconds, run.seconds)
                redraws += 1
            reruns = 0
            while not (statuses and statuses[-1] in (0, 1)) and reruns < 4:
                reruns += 1
                run = Run(binary, command, env, work, f"round-{number}-rerun-{reruns}")
                started += 1
                status = run.wait(timeout=600)
                rerun_seconds.append(run.seconds)
                statuses.append(status)
                finished += status is not None
                if status not in (0, 1, 5):
                    problems.append(f"rerun {reruns} ended {status}:\n{run.stderr_tail()}")
                    break
            if not (statuses and statuses[-1] in (0, 1)):
                problems.append(f"no run finished with 0 or 1 (exits {statuses})")
            rows = read_manifest(manifest, problems)
            remote = fakes.remote()
            problems += check_round(sources, rows, journal, remote, expected, finished, started)
            kills_total += len(landed)
            reruns_total += reruns
            kill_spots += [m / baseline_seconds for m in landed]  # of the clean-run length drawn from
            repeats = len(remote["hooks"]["deliveries"]) - len(remote["hooks"]["processed"])
            verdict = "ok" if not problems else f"{len(problems)} VIOLATIONS"
            print(f"round {number}/{rounds}: {len(landed)} kills at {', '.join(f'{m:.2f}' for m in landed) or '-'} s"
                  f"{' (a run ended before its kill)' if len(landed) < planned else ''}, {reruns} reruns "
                  f"({', '.join(f'{t:.1f}' for t in rerun_seconds) or '-'} s), exits {statuses}, "
                  f"{len(remote['images'])} images, {len(remote['objects'])} R2 objects, {len(remote['videos'])} videos, "
                  f"{len(remote['hooks']['processed'])} events ({repeats} repeated deliveries): {verdict} "
                  f"({time.monotonic() - round_began:.1f} s)", flush=True)
            if problems:
                failures += 1
                print(f"  evidence (seed {seed}, round {number}, work {work}):", file=sys.stderr)
                for problem in problems:
                    print("  - " + problem.replace("\n", "\n    "), file=sys.stderr)
                saved = os.path.join(work, f"failed-round-{number}")
                os.makedirs(saved, exist_ok=True)
                for suffix in ("", "-wal", "-shm"):
                    if os.path.exists(journal + suffix):
                        shutil.copyfile(journal + suffix, os.path.join(saved, "journal.db" + suffix))
                if os.path.exists(manifest):
                    shutil.copyfile(manifest, os.path.join(saved, "manifest.jsonl"))
                with open(os.path.join(saved, "remote.json"), "w", encoding="utf-8") as out:
                    json.dump(remote, out, indent=1)
                args.keep = True

        elapsed = time.monotonic() - began
        spread = sorted(kill_spots)
        print(f"random-kill: {rounds} rounds, {kills_total} kills "
              f"(at {spread[0]:.0%}..{spread[-1]:.0%} of a clean run)" if spread else
              f"random-kill: {rounds} rounds, no kill landed", end="")
        print(f", {reruns_total} reruns, {redraws} rounds started again (no kill landed), {failures} rounds with "
              f"violations, {elapsed:.0f} s in all, seed {seed}")
        if kills_total < rounds:
            print(f"random-kill: only {kills_total} kills landed in {rounds} rounds: the harness tested too little",
                  file=sys.stderr)
            return 1
        return 1 if failures else 0
    except SetupError as err:
        print(f"random-kill: setup failed: {err}", file=sys.stderr)
        return 2
    finally:
        if Run.current is not None and Run.current.process.poll() is None:
            os.killpg(Run.current.process.pid, signal.SIGKILL)
            Run.current.process.wait()
        if fakes is not None:
            fakes.stop()
        if args.keep:
            print(f"random-kill: work folder kept: {work}")
        elif not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
