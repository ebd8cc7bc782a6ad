"""Collector speed, end to end: throughput, acknowledgement latency, visibility, memory.

Run: ``.venv/bin/python bench/ingest.py [--quick] [--profile]``
(full: about 8-12 min; ``--quick``: < 2 min; ``--profile`` also samples the collector with
py-spy under max load and prints where its time goes).

Traffic (``bench/traffic.py``): realistic RAG traces (CHAIN -> RETRIEVER with 3-5
documents -> LLM whose input inlines a shared system prompt and the documents, 5-9 KB of
text per LLM span, OpenInference attributes, Faker PII in ~15 % of the questions), pre-built
before timing as OTLP export requests of 510 spans (protobuf and OTLP/JSON).  Before each
send a sender stamps a fresh 8-byte prefix into every trace id of its copy of the request,
so every span sent is new (nothing is deduplicated away).

The real collector runs as a subprocess on loopback (``tracewatch collector``), a fresh
data directory per phase.  Senders are separate processes (``multiprocessing`` spawn),
each with one keep-alive connection (``http.client``) or gRPC channel (raw bytes to
``TraceService/Export``); a 503 / UNAVAILABLE is counted and retried after ``Retry-After``.

Phases:
1. HTTP protobuf, redaction off, senders as fast as they can for 60 s (quick 10 s);
   end to end = from the first request until every acknowledged span is queryable
   (``SELECT count(*) FROM spans`` through ``analytics.views.open_store``), and the count
   must equal the spans acknowledged.
2. OTLP/JSON over HTTP, same (30 s; quick 8 s).
3. gRPC, same as 1 (60 s; quick 10 s); compared with 1.
4. Paced at half of the end-to-end rate of 1 (30 s; quick 8 s): acknowledgement latency
   p50/p99 and receipt-to-queryable (from the send of a request until all its spans are in
   the store's current snapshot; polled every 0.25 s over the snapshot's new files).
5. Redaction on: a warm-up request (its time is the cold start), then 6,120 spans (quick
   1,530) from requests never sent before, as fast as the collector accepts them; end to
   end until all are queryable.
Memory and CPU figures include the compaction that follows a burst (the bench waits for
its commit).  Memory (the target's figure): the peak of what the collector's
process tree occupies, sampled every 0.25 s: the anonymous memory of the receiving process
and its pipeline workers, plus the library pages resident in any of them, each page counted
once (``PssSampler``).  Each collector starts with the shared libraries out of the page
cache (``evict_library_cache``: how many of their pages a process maps depends on how
the file came into the cache; ``--warm-libraries`` keeps the cache as it is).  The peak PSS, the peak RSS of the receiving process and the sum of
the peak RSS of all processes (which counts shared pages once per process) are printed
beside it.
CPU: seconds used by the receiving process and by the workers, per span stored.
Commits: ``spans/_delta_log/*.json`` files created during a phase, per second.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing as mp
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

GRPC_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

TARGET_HTTP_PB = 20_000.0
TARGET_JSON = 10_000.0
TARGET_GRPC_SHARE = 0.80
TARGET_ACK_P99_MS = 50.0
TARGET_VISIBLE_P95_S = 5.0
TARGET_REDACTED = 300.0
TARGET_RSS_OFF_MB = 300.0
TARGET_RSS_ON_MB = 1024.0
TARGET_COMMITS_PER_S = 1.2  # "at most about once per second"


# ----------------------------------------------------------------------------- senders


def _sender_main(cfg: dict[str, Any], ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """One sender process: load templates, wait for the start, send, report records."""
    from traffic import Stamper

    with open(cfg["templates_file"], "rb") as fh:
        templates = pickle.load(fh)
    chosen = [templates[i] for i in cfg["template_indexes"]]
    is_json = cfg["transport"] == "http-json"
    stampers = [Stamper(t, is_json) for t in chosen]
    transport = cfg["transport"]
    host, _, port = cfg["address"].rpartition(":")
    conn: http.client.HTTPConnection | None = None
    grpc_call = None
    if transport == "grpc":
        import grpc

        channel = grpc.insecure_channel(
            cfg["address"],
            options=[("grpc.max_send_message_length", 64 << 20), ("grpc.max_receive_message_length", 64 << 20)],
        )
        grpc_call = channel.unary_unary(GRPC_METHOD, request_serializer=None, response_deserializer=None)
        grpc.channel_ready_future(channel).result(timeout=30)
    else:
        conn = http.client.HTTPConnection(host, int(port), timeout=120)
        conn.connect()
    content_type = "application/json" if is_json else "application/x-protobuf"
    ready.put(cfg["sender_id"])
    go.wait()
    t0 = start_at.value
    mode = cfg["mode"]
    interval = cfg.get("interval_s", 0.0)
    offset = cfg.get("offset_s", 0.0)
    deadline = t0 + cfg.get("duration_s", 0.0)
    max_requests = cfg.get("max_requests", 1 << 62)
    records: list[tuple[int, float, float, int]] = []  # gen, t_send, t_ack, spans
    retries = Counter()
    errors: list[str] = []
    now = time.monotonic()
    if now < t0:
        time.sleep(t0 - now)
    cpu_start = time.process_time()
    seq = 0
    while seq < max_requests:
        if mode == "paced":
            due = t0 + offset + seq * interval
            if due >= deadline:
                break
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        elif mode == "max" and time.monotonic() >= deadline:
            break
        stamper = stampers[seq % len(stampers)]
        gen = cfg["gen_base"] + seq
        body = stamper.stamp(gen)
        attempts = 0
        while True:
            attempts += 1
            t_send = time.monotonic()
            try:
                if grpc_call is not None:
                    import grpc

                    try:
                        grpc_call(bytes(body), timeout=120)
                        ok = True
                    except grpc.RpcError as exc:
                        code = exc.code()
                        if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
                            retries[code.name] += 1
                            retry_after = dict(exc.initial_metadata() or ()).get("retry-after", "1")
                            time.sleep(float(retry_after))
                            continue
                        raise
                else:
                    assert conn is not None
                    conn.request("POST", "/v1/traces", body=body, headers={"Content-Type": content_type})
                    response = conn.getresponse()
                    response.read()
                    if response.status in (429, 503):
                        retries[str(response.status)] += 1
                        time.sleep(float(response.getheader("Retry-After") or 1))
                        continue
                    if response.status != 200:
                        raise RuntimeError(f"HTTP {response.status}")
                    ok = True
            except (OSError, http.client.HTTPException) as exc:
                retries["connection"] += 1
                errors.append(f"{type(exc).__name__}: {exc}")
                if attempts > 20:
                    break
                time.sleep(0.5)
                if conn is not None:
                    conn.close()
                    conn = http.client.HTTPConnection(host, int(port), timeout=120)
                continue
            except Exception as exc:  # a permanent error: report it, stop this request
                errors.append(f"{type(exc).__name__}: {exc}")
                ok = False
            if ok:
                records.append((gen, t_send, time.monotonic(), stamper.template.num_spans))
            break
        seq += 1
    results.put({"sender_id": cfg["sender_id"], "records": records, "retries": dict(retries),
                 "cpu_s": time.process_time() - cpu_start,
                 "errors": errors[:5], "num_errors": len(errors)})


@dataclass
class SendResult:
    records: list[tuple[int, float, float, int]] = field(default_factory=list)
    retries: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    t0: float = 0.0
    cpu_s: float = 0.0

    @property
    def spans(self) -> int:
        return sum(r[3] for r in self.records)

    @property
    def last_ack(self) -> float:
        return max((r[2] for r in self.records), default=self.t0)


class SenderGroup:
    """Starts sender processes, releases them together, collects their records."""

    def __init__(self, configs: list[dict[str, Any]]) -> None:
        ctx = mp.get_context("spawn")
        self.ready = ctx.Queue()
        self.results = ctx.Queue()
        self.go = ctx.Event()
        self.start_at = ctx.Value("d", 0.0)
        self.procs = [
            ctx.Process(target=_sender_main, args=(cfg, self.ready, self.go, self.start_at, self.results), daemon=True)
            for cfg in configs
        ]

    def start(self) -> float:
        for proc in self.procs:
            proc.start()
        for _ in self.procs:
            self.ready.get(timeout=180)
        t0 = time.monotonic() + 0.2
        self.start_at.value = t0
        self.go.set()
        return t0

    def join(self, t0: float) -> SendResult:
        out = SendResult(t0=t0)
        for _ in self.procs:
            item = self.results.get(timeout=900)
            out.records.extend(item["records"])
            out.retries.update(item["retries"])
            out.errors.extend(item["errors"])
            out.cpu_s += item["cpu_s"]
        for proc in self.procs:
            proc.join(timeout=30)
        out.records.sort(key=lambda r: r[1])
        return out


# ----------------------------------------------------------------------------- store


def snapshot_count(data_dir: Path) -> int:
    """Rows in the spans table's current snapshot (cheap: Parquet metadata)."""
    import duckdb

    from analytics.views import snapshot_files

    files, _ = snapshot_files(data_dir, "spans")
    if not files:
        return 0
    con = duckdb.connect(":memory:")
    try:
        row = con.execute("SELECT count(*) FROM read_parquet($f)", {"f": files}).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


def view_count(data_dir: Path) -> int:
    from analytics.views import open_store

    con = open_store(data_dir)
    try:
        return int(con.execute("SELECT count(*) FROM spans").fetchone()[0])
    finally:
        con.close()


def wait_all_visible(data_dir: Path, expected: int, timeout_s: float, poll_s: float = 0.2) -> tuple[float | None, int]:
    """Poll until the store holds ``expected`` spans; returns (time seen, last count)."""
    deadline = time.monotonic() + timeout_s
    count = -1
    while time.monotonic() < deadline:
        count = snapshot_count(data_dir)
        if count >= expected:
            seen = time.monotonic()
            return seen, view_count(data_dir)  # confirm through the `spans` view
        time.sleep(poll_s)
    return None, view_count(data_dir)


class VisibilityPoller(threading.Thread):
    """Records when each request's ``gen`` (trace-id prefix) first appears in the snapshot."""

    def __init__(self, data_dir: Path, poll_s: float = 0.25) -> None:
        super().__init__(daemon=True)
        self.data_dir = data_dir
        self.poll_s = poll_s
        self.first_seen: dict[int, float] = {}
        self.seen_files: set[str] = set()
        self.stop_flag = threading.Event()
        self.expected: set[int] | None = None

    def run(self) -> None:
        import duckdb

        from analytics.views import snapshot_files

        con = duckdb.connect(":memory:")
        while not self.stop_flag.is_set():
            try:
                files, _ = snapshot_files(self.data_dir, "spans")
            except Exception:
                files = []
            now = time.monotonic()
            new = [f for f in files if f not in self.seen_files]
            if new:
                rows = con.execute(
                    "SELECT DISTINCT substr(trace_id, 1, 16) FROM read_parquet($f)", {"f": new}
                ).fetchall()
                for (prefix,) in rows:
                    self.first_seen.setdefault(int(prefix, 16), now)
                self.seen_files.update(new)
            if self.expected is not None and self.expected.issubset(self.first_seen):
                return
            self.stop_flag.wait(self.poll_s)


# ----------------------------------------------------------------------------- collector


def vm_hwm_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_hwm_mb(pid: int) -> tuple[float, float, list[float]]:
    """(collector VmHWM, collector + children VmHWM, each child's VmHWM) in MB."""
    import psutil

    own = vm_hwm_mb(pid)
    children: list[float] = []
    try:
        children = [vm_hwm_mb(child.pid) for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        pass
    return own, own + sum(children), children


def tree_cpu_s(pid: int) -> tuple[float, float]:
    """(collector process CPU seconds, its child processes' CPU seconds), user + system."""
    import psutil

    try:
        proc = psutil.Process(pid)
        own = sum(proc.cpu_times()[:2])
        children = 0.0
        for child in proc.children(recursive=True):
            try:
                children += sum(child.cpu_times()[:2])
            except psutil.Error:
                pass
        return own, children
    except psutil.Error:
        return 0.0, 0.0


def _pss_rollup(pid: int) -> tuple[int, int]:
    """(anonymous, file-backed) PSS in bytes, from /proc/PID/smaps_rollup."""
    anon = file = 0
    with open(f"/proc/{pid}/smaps_rollup") as fh:
        for line in fh:
            if line.startswith("Pss_Anon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith(("Pss_File:", "Pss_Shmem:")):
                file += int(line.split()[1]) * 1024
    return anon, file


_PAGE = os.sysconf("SC_PAGE_SIZE")


def _file_frames(pid: int) -> Any:
    """Physical frame numbers of the file-backed pages (libraries, mapped files) resident in
    the process, from /proc/PID/pagemap (root only)."""
    import numpy as np

    frames = []
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/pagemap", "rb", buffering=0) as pagemap:
        for line in maps:
            fields = line.split()
            if len(fields) < 6 or not fields[5].startswith("/"):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            pagemap.seek(start // _PAGE * 8)
            entries = np.frombuffer(pagemap.read((end - start) // _PAGE * 8), dtype=np.uint64)
            # bit 63: present; bit 61: a file page (a written private page is anonymous,
            # and counted in Pss_Anon); bits 0-54: the frame.
            wanted = (entries >> np.uint64(63) == 1) & ((entries >> np.uint64(61)) & np.uint64(1) == 1)
            frames.append(entries[wanted] & np.uint64((1 << 55) - 1))
    return np.concatenate(frames) if frames else np.empty(0, dtype=np.uint64)


def evict_library_cache() -> int:
    """Drop the shared libraries of this Python installation from the page cache (those no
    running process maps); returns how many files were advised.

    Why: the library pages the memory figure counts depend on how a library came into the
    page cache, not on the collector.  A file pip has just written sits there in large
    folios, and a process that touches one page of a folio maps all of it: right after
    ``pip install``, deltalake's library alone showed 72 MB resident in the collector,
    against 32 MB once it had been read back through page faults (after a reboot, or once
    the kernel has dropped it), with the same code and the same requests.  Evicting first
    makes every run measure the second state; ``--warm-libraries`` skips it.
    """
    roots = {sysconfig.get_paths()["platlib"], sysconfig.get_paths()["purelib"],
             sysconfig.get_config_var("LIBDIR") or "", os.path.join(sys.base_prefix, "lib")}
    advised = 0
    for root in filter(None, roots):
        for folder, _, names in os.walk(root):
            for name in names:
                if not (name.endswith(".so") or ".so." in name):
                    continue
                try:
                    fd = os.open(os.path.join(folder, name), os.O_RDONLY)
                except OSError:
                    continue
                try:
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                    advised += 1
                finally:
                    os.close(fd)
    return advised


class PssSampler(threading.Thread):
    """Peak memory of the collector's process tree, sampled every 0.25 s.

    The figure is what the tree occupies when it runs alone: its anonymous memory (private
    to each process) plus the file-backed pages (shared libraries) resident in any of its
    processes, each page counted once.  Plain PSS would split a library's pages with every
    other process mapping them, this benchmark included (it loads pyarrow, deltalake and
    DuckDB too), and so understate the collector by ~35 MB.  The file-backed part changes
    slowly and is re-read every 2 s (pagemap, root only; without it, PSS's file part).
    ``at_peak`` keeps each process's (anonymous, file-backed PSS) in MB at that moment."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.peak_mb = 0.0
        self.peak_pss_mb = 0.0
        self.file_mb = 0.0
        self.at_peak: list[tuple[float, float]] = []
        self.peak_at_s = 0.0
        self.series: list[tuple[float, list[tuple[float, float]]]] = []  # (s, at_peak's shape) every 2 s
        self.stop_flag = threading.Event()

    def _distinct_file_mb(self, pids: list[int]) -> float | None:
        import numpy as np

        try:
            frames = [_file_frames(pid) for pid in pids]
        except OSError:
            return None
        return len(np.unique(np.concatenate(frames))) * _PAGE / 2**20

    def run(self) -> None:
        import psutil

        started = time.monotonic()
        file_read_at = -1e9
        while not self.stop_flag.wait(0.25):
            try:
                pids = [self.pid] + [child.pid for child in psutil.Process(self.pid).children(recursive=True)]
            except psutil.Error:
                return
            parts = []
            for pid in pids:
                try:
                    anon, file = _pss_rollup(pid)
                except OSError:
                    continue
                parts.append((anon / 2**20, file / 2**20))
            now = time.monotonic() - started
            if now - file_read_at >= 2.0:
                distinct = self._distinct_file_mb(pids)
                self.file_mb = distinct if distinct is not None else sum(f for _, f in parts)
                file_read_at = now
            total = sum(a for a, _ in parts) + self.file_mb
            self.peak_pss_mb = max(self.peak_pss_mb, sum(a + f for a, f in parts))
            if total > self.peak_mb:
                self.peak_mb, self.at_peak, self.peak_at_s = total, parts, now
            if not self.series or now - self.series[-1][0] >= 2.0:
                self.series.append((now, parts))

    def finish(self) -> float:
        self.stop_flag.set()
        self.join(timeout=5)
        return self.peak_mb

    def breakdown(self) -> str:
        return (", ".join(f"{a:.0f}" for a, _ in self.at_peak)
                + f" MB anonymous (receiver first) + {self.file_mb:.0f} MB of library pages, at {self.peak_at_s:.0f} s;"
                + f" peak PSS {self.peak_pss_mb:.0f} MB")

    def trace(self) -> str:
        return "\n".join(f"    {t:5.0f} s  " + "  ".join(f"{a:4.0f}+{f:<3.0f}" for a, f in parts)
                         for t, parts in self.series)


COMPACT_MIN_FILES = 64  # the collector's default compact_min_files


def wait_for_compaction(data_dir: Path, commits_before: int, timeout_s: float = 180.0) -> float | None:
    """Seconds until a compaction commit (made after ``commits_before``) is in the log;
    0 when the snapshot has too few files for one; None on timeout."""
    from deltalake import DeltaTable

    if parquet_files(data_dir)[0] < COMPACT_MIN_FILES:
        return 0.0
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        table = DeltaTable(str(data_dir / "spans"))
        for commit in table.history(table.version() + 1 - commits_before):
            if commit.get("tracewatch.operation") == "tracewatch-compact":
                return time.monotonic() - started
        time.sleep(0.5)
    return None


def delta_commits(data_dir: Path) -> int:
    """Commits in the spans log that wrote spans (compaction commits are not counted)."""
    log = data_dir / "spans" / "_delta_log"
    if not log.is_dir():
        return 0
    return sum(1 for path in log.glob("*.json") if b"tracewatch-compact" not in path.read_bytes())


def parquet_files(data_dir: Path) -> tuple[int, int]:
    """(files in the current snapshot, .parquet files on disk)."""
    from analytics.views import snapshot_files

    files, _ = snapshot_files(data_dir, "spans")
    on_disk = sum(1 for _ in (data_dir / "spans").rglob("*.parquet"))
    return len(files), on_disk


class Profiler:
    """py-spy record of the collector for a while (raw collapsed stacks)."""

    def __init__(self, pid: int, out: Path, duration_s: int, delay_s: float,
                 main_only: bool = False) -> None:
        self.out = out
        self.main_only = main_only
        self.proc: subprocess.Popen[bytes] | None = None
        self._timer = threading.Timer(delay_s, self._start, args=(pid, duration_s))
        self._timer.start()

    def _start(self, pid: int, duration_s: int) -> None:
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        self.proc = subprocess.Popen(
            [py_spy, "record", "--pid", str(pid), "--duration", str(duration_s), "--rate", "50",
             "--format", "raw", "--output", str(self.out),
             *([] if self.main_only else ["--subprocesses"]), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def wait(self) -> str:
        self._timer.join()
        if self.proc is None:
            return "py-spy did not start"
        try:
            _, err = self.proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "py-spy timed out"
        if not self.out.exists():
            return f"py-spy failed: {err.decode(errors='replace')[-300:]}"
        return summarise_profile(self.out)


def summarise_profile(path: Path, top: int = 12) -> str:
    """Top functions by self and by inclusive samples, from py-spy's raw output."""
    self_c: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        threads[frames[0][:60]] += count
        self_c[_short(frames[-1])] += count
        for frame in set(_short(f) for f in frames[1:]):
            incl[frame] += count
    if not total:
        return "no samples"
    lines = [f"      {total} samples; by thread/process: " + ", ".join(f"{k} {v / total:.0%}" for k, v in threads.most_common(5)),
             "      self time:"]
    lines += [f"        {v / total:6.1%}  {k}" for k, v in self_c.most_common(top)]
    lines.append("      inclusive (tracewatch code):")
    ours = [(k, v) for k, v in incl.most_common() if "collector/" in k or "analytics/" in k]
    lines += [f"        {v / total:6.1%}  {k}" for k, v in ours[:top]]
    return "\n".join(lines)


def _short(frame: str) -> str:
    # "function (path/to/file.py:123)" -> "function (file or pkg/file.py:123)"
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    parts = where.split("/")
    short = "/".join(parts[-2:]) if len(parts) >= 2 else where
    return f"{name} ({short})"


# ----------------------------------------------------------------------------- phases


@dataclass
class PhaseOutcome:
    name: str
    acked_spans: int = 0
    stored: int = 0
    ack_rate: float = 0.0
    e2e_rate: float = 0.0
    e2e_s: float = 0.0
    send_s: float = 0.0
    retries: Counter = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    rss_mb: float = 0.0
    rss_tree_mb: float = 0.0
    commits: int = 0
    commits_per_s: float = 0.0
    snapshot_files: int = 0
    disk_files: int = 0
    all_visible: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    profile: str = ""
    sender_cpu_s: float = 0.0
    cpu_main_s: float = 0.0
    pss_tree_mb: float = 0.0
    cpu_workers_s: float = 0.0


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.quick = args.quick
        self.work = Path(tempfile.mkdtemp(prefix="tracewatch-bench-"))
        self.num_templates = args.templates or (12 if self.quick else 48)
        self.phase_no = 0
        self.llm_sizes: list[int] = []
        self.request_bytes: dict[str, int] = {}
        self.outcomes: dict[str, PhaseOutcome] = {}
        self.running: list[Any] = []

    # -- setup -------------------------------------------------------------------------

    def build_templates(self) -> None:
        from traffic import SPANS_PER_REQUEST, TrafficGenerator

        started = time.perf_counter()
        generator = TrafficGenerator(seed=self.args.seed)
        pb, js = [], []
        for i in range(self.num_templates):
            p, j = generator.build(i)
            pb.append(p)
            js.append(j)
            self.llm_sizes.extend(p.text_bytes_llm)
        for name, items in (("pb", pb), ("json", js)):
            with open(self.work / f"templates-{name}.pickle", "wb") as fh:
                pickle.dump(items, fh, protocol=pickle.HIGHEST_PROTOCOL)
            self.request_bytes[name] = sum(len(t.body) for t in items) // len(items)
        sizes = sorted(self.llm_sizes)
        print(f"built {self.num_templates} export requests of {SPANS_PER_REQUEST} spans in "
              f"{time.perf_counter() - started:.1f} s: protobuf {self.request_bytes['pb'] / 1e6:.2f} MB, "
              f"OTLP/JSON {self.request_bytes['json'] / 1e6:.2f} MB per request; text per LLM span "
              f"p5 {sizes[len(sizes) // 20] / 1000:.1f} KB, median {sizes[len(sizes) // 2] / 1000:.1f} KB, "
              f"p95 {sizes[len(sizes) * 19 // 20] / 1000:.1f} KB; CPUs: {len(os.sched_getaffinity(0))}", flush=True)

    def start_collector(self, name: str, redaction: bool) -> Any:
        from tests.collector_process import start_collector

        data_dir = self.work / f"data-{name}"
        extra = () if redaction else ("--no-redaction",)
        env = dict(item.split("=", 1) for item in self.args.collector_env)
        level = os.environ.get("TRACEWATCH_LOG_LEVEL")
        if level:
            env["TRACEWATCH_LOG_LEVEL"] = level
        if not self.args.warm_libraries:
            evict_library_cache()
        collector = start_collector(data_dir, *extra, timeout_s=180, env=env or None)
        self.running.append(collector)
        collector.pss = PssSampler(collector.process.pid)
        collector.pss.start()
        return collector

    def stop_all(self) -> None:
        for collector in self.running:
            collector.kill()

    def sender_configs(self, transport: str, address: str, mode: str, senders: int, *,
                       duration_s: float = 0.0, interval_s: float = 0.0,
                       template_indexes: list[list[int]] | None = None,
                       max_requests: int | None = None) -> list[dict[str, Any]]:
        self.phase_no += 1
        fmt = "json" if transport == "http-json" else "pb"
        configs = []
        for k in range(senders):
            indexes = (template_indexes[k] if template_indexes
                       else [(k * 7 + i) % self.num_templates for i in range(self.num_templates)])
            cfg = {
                "sender_id": k, "transport": transport, "address": address, "mode": mode,
                "templates_file": str(self.work / f"templates-{fmt}.pickle"),
                "template_indexes": indexes,
                "gen_base": (self.phase_no << 48) | (k << 32),
                "duration_s": duration_s, "interval_s": interval_s,
                "offset_s": interval_s * k / senders,
            }
            if max_requests is not None:
                cfg["max_requests"] = max_requests
            configs.append(cfg)
        return configs

    def finish(self, out: PhaseOutcome, collector: Any, commits_before: int, t0: float, t_end: float) -> None:
        out.commits = delta_commits(collector.data_dir) - commits_before
        out.commits_per_s = out.commits / max(t_end - t0, 1e-9)
        out.extra["files_at_visible"] = parquet_files(collector.data_dir)[0]
        # Memory and CPU include the compaction that follows a burst (the collector
        # compacts once it has caught up): wait for it before reading them.
        out.extra["compaction_wait_s"] = wait_for_compaction(collector.data_dir, commits_before)
        out.rss_mb, out.rss_tree_mb, out.extra["rss_children"] = tree_hwm_mb(collector.process.pid)
        out.pss_tree_mb = collector.pss.finish()
        out.extra["pss_breakdown"] = collector.pss.breakdown()
        if self.args.pss_trace:
            print("  PSS every 2 s since the collector started (anonymous+file MB per process, receiver first):\n"
                  + collector.pss.trace(), flush=True)
        out.cpu_main_s, out.cpu_workers_s = tree_cpu_s(collector.process.pid)
        out.snapshot_files, out.disk_files = parquet_files(collector.data_dir)
        collector.stop()
        if self.args.show_log:
            print("  collector log:\n    " + collector.log_text[-20000:].replace("\n", "\n    "), flush=True)
        if not self.args.keep_data:
            shutil.rmtree(collector.data_dir, ignore_errors=True)
        os.sync()  # this phase's writeback must not stall the next phase's fsyncs

    # -- max rate ----------------------------------------------------------------------

    def run_max(self, key: str, label: str, transport: str, duration_s: float) -> PhaseOutcome:
        print(f"\n[{label}] redaction off, {self.args.senders} senders, {duration_s:.0f} s as fast as possible ...", flush=True)
        collector = self.start_collector(key, redaction=False)
        address = collector.grpc if transport == "grpc" else collector.http
        commits_before = delta_commits(collector.data_dir)
        group = SenderGroup(self.sender_configs(transport, address, "max", self.args.senders, duration_s=duration_s))
        t0 = group.start()
        profiler = None
        if self.args.profile and key == "http-pb":
            profiler = Profiler(collector.process.pid, self.work / f"profile-{key}.txt",
                                int(min(10, duration_s * 0.6)), delay_s=0.2 + duration_s * 0.3,
                                main_only=self.args.profile_main)
        sent = group.join(t0)
        out = PhaseOutcome(label, retries=sent.retries, errors=sent.errors, sender_cpu_s=sent.cpu_s)
        out.acked_spans = sent.spans
        out.send_s = sent.last_ack - t0
        out.ack_rate = out.acked_spans / max(out.send_s, 1e-9)
        seen, out.stored = wait_all_visible(collector.data_dir, out.acked_spans, timeout_s=600)
        out.all_visible = seen is not None and out.stored == out.acked_spans
        t_end = seen if seen is not None else time.monotonic()
        out.e2e_s = t_end - t0
        out.e2e_rate = (out.stored if seen else 0) / out.e2e_s
        # ack rate per window, to see whether it is sustained
        window = max(duration_s / 6, 1.0)
        buckets: Counter[int] = Counter()
        for _, _, t_ack, spans in sent.records:
            buckets[int((t_ack - t0) // window)] += spans
        out.extra["windows"] = [buckets.get(i, 0) / window for i in range(int(duration_s // window) + 1)]
        out.extra["window_s"] = window
        if profiler:
            out.profile = profiler.wait()
        self.finish(out, collector, commits_before, t0, t_end)
        self.print_phase(out)
        return out

    # -- paced -------------------------------------------------------------------------

    def run_paced(self, rate: float, duration_s: float) -> PhaseOutcome:
        from traffic import SPANS_PER_REQUEST

        senders = self.args.senders
        interval = senders * SPANS_PER_REQUEST / rate
        label = "HTTP protobuf paced at half max"
        print(f"\n[{label}] redaction off, {rate:,.0f} spans/s ({senders} senders, one request each "
              f"every {interval * 1000:.0f} ms), {duration_s:.0f} s ...", flush=True)
        collector = self.start_collector("paced", redaction=False)
        commits_before = delta_commits(collector.data_dir)
        group = SenderGroup(self.sender_configs("http-pb", collector.http, "paced", senders,
                                                duration_s=duration_s, interval_s=interval))
        poller = VisibilityPoller(collector.data_dir)
        t0 = group.start()
        poller.start()
        sent = group.join(t0)
        poller.expected = {r[0] for r in sent.records}
        poller.join(timeout=120)
        poller.stop_flag.set()
        out = PhaseOutcome(label, retries=sent.retries, errors=sent.errors, sender_cpu_s=sent.cpu_s)
        out.acked_spans = sent.spans
        out.send_s = sent.last_ack - t0
        out.ack_rate = out.acked_spans / max(out.send_s, 1e-9)
        acks = sorted((r[2] - r[1]) * 1000 for r in sent.records)
        visible = sorted(poller.first_seen[r[0]] - r[1] for r in sent.records if r[0] in poller.first_seen)
        missing = sum(1 for r in sent.records if r[0] not in poller.first_seen)
        out.extra.update(target_rate=rate, ack_ms=acks, visible_s=visible, missing=missing)
        t_end = max(poller.first_seen.values(), default=time.monotonic())
        out.stored = view_count(collector.data_dir)
        out.all_visible = missing == 0 and out.stored == out.acked_spans
        out.e2e_s = t_end - t0
        out.e2e_rate = out.stored / out.e2e_s
        self.finish(out, collector, commits_before, t0, t_end)
        self.print_phase(out)
        return out

    # -- redaction on --------------------------------------------------------------------

    def run_redaction(self, num_requests: int) -> PhaseOutcome:
        from traffic import SPANS_PER_REQUEST

        label = "HTTP protobuf, redaction ON"
        print(f"\n[{label}] warm-up request, then {num_requests * SPANS_PER_REQUEST:,} new spans ...", flush=True)
        collector = self.start_collector("redaction", redaction=True)
        # Warm-up: the last template (never sent in this phase again).
        warm_start = time.monotonic()
        warm = SenderGroup(self.sender_configs("http-pb", collector.http, "count", 1, max_requests=1,
                                               template_indexes=[[self.num_templates - 1]]))
        t_w = warm.start()
        warm_sent = warm.join(t_w)
        warm_seen, _ = wait_all_visible(collector.data_dir, warm_sent.spans, timeout_s=300)
        cold_s = (warm_seen or time.monotonic()) - t_w
        commits_before = delta_commits(collector.data_dir)
        senders = 2
        indexes = list(range(min(num_requests, self.num_templates - 1)))
        per_sender = [indexes[k::senders] for k in range(senders)]
        configs = self.sender_configs("http-pb", collector.http, "count", senders, template_indexes=per_sender)
        for cfg, idx in zip(configs, per_sender):
            cfg["max_requests"] = len(idx)
        group = SenderGroup(configs)
        t0 = group.start()
        profiler = None
        if self.args.profile:
            profiler = Profiler(collector.process.pid, self.work / "profile-redaction.txt", 10, delay_s=2.0)
        sent = group.join(t0)
        out = PhaseOutcome(label, retries=sent.retries, errors=sent.errors, sender_cpu_s=sent.cpu_s)
        out.acked_spans = sent.spans
        out.send_s = sent.last_ack - t0
        out.ack_rate = out.acked_spans / max(out.send_s, 1e-9)
        expected = out.acked_spans + warm_sent.spans
        seen, stored = wait_all_visible(collector.data_dir, expected, timeout_s=900)
        out.stored = stored - warm_sent.spans
        out.all_visible = seen is not None and stored == expected
        t_end = seen if seen is not None else time.monotonic()
        out.e2e_s = t_end - t0
        out.e2e_rate = (out.stored if seen else 0) / out.e2e_s
        out.extra.update(cold_s=cold_s, warm_spans=warm_sent.spans, warm_total_s=time.monotonic() - warm_start)
        if profiler:
            out.profile = profiler.wait()
        self.finish(out, collector, commits_before, t0, t_end)
        self.print_phase(out)
        return out

    # -- output ------------------------------------------------------------------------

    def print_phase(self, out: PhaseOutcome) -> None:
        retries = ", ".join(f"{k}: {v}" for k, v in sorted(out.retries.items())) or "none"
        print(f"  acknowledged {out.acked_spans:,} spans in {out.send_s:.1f} s ({out.ack_rate:,.0f} spans/s acked); "
              f"all {out.stored:,} queryable after {out.e2e_s:.1f} s -> {out.e2e_rate:,.0f} spans/s end to end; "
              f"lost {out.acked_spans - out.stored:,}; retried requests: {retries}; "
              f"senders used {out.sender_cpu_s:.1f} CPU-s while sending", flush=True)
        if out.errors:
            print(f"  errors: {out.errors[:3]}")
        if "windows" in out.extra:
            w = out.extra["windows"]
            print(f"  acked spans/s per {out.extra['window_s']:.1f} s window: " + ", ".join(f"{x:,.0f}" for x in w))
        if "ack_ms" in out.extra:
            acks, vis = out.extra["ack_ms"], out.extra["visible_s"]
            print(f"  ack latency ms: p50 {pct(acks, 50):.1f}, p90 {pct(acks, 90):.1f}, p99 {pct(acks, 99):.1f}, max {acks[-1] if acks else 0:.1f}; "
                  f"send-to-queryable s: p50 {pct(vis, 50):.2f}, p95 {pct(vis, 95):.2f}, max {vis[-1] if vis else 0:.2f}; "
                  f"requests never seen: {out.extra['missing']}")
        if "cold_s" in out.extra:
            print(f"  cold start: the warm-up request ({out.extra['warm_spans']} spans) was queryable after {out.extra['cold_s']:.1f} s")
        print(f"  collector peak RSS {out.rss_mb:.0f} MB" + (f" (with child processes {out.rss_tree_mb:.0f} MB)" if out.rss_tree_mb != out.rss_mb else "")
              + f" [children: {', '.join(f'{x:.0f}' for x in out.extra.get('rss_children', []))}]"
              + f"; peak memory of the process tree {out.pss_tree_mb:.0f} MB"
              + f" [{out.extra.get('pss_breakdown', '')}]"
              + f"; {out.commits} commits ({out.commits_per_s:.2f}/s); Parquet files: {out.extra.get('files_at_visible')} "
              f"in the snapshot when all were queryable, {out.snapshot_files} after compaction "
              f"(waited {out.extra.get('compaction_wait_s') or 0:.1f} s for it), {out.disk_files} on disk", flush=True)
        if out.stored:
            per = 1e6 / out.stored
            print(f"  collector CPU: main process {out.cpu_main_s:.1f} s ({out.cpu_main_s * per:.0f} us/span), "
                  f"pipeline workers {out.cpu_workers_s:.1f} s ({out.cpu_workers_s * per:.0f} us/span), "
                  f"from start to stop (compaction after the burst included)", flush=True)
        if out.profile:
            print("  py-spy (collector, max load):\n" + out.profile, flush=True)


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    k = (len(values) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(values) - 1)
    return values[lo] + (values[hi] - values[lo]) * (k - lo)


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (< 2 min)")
    parser.add_argument("--senders", type=int, default=4, help="sender processes (default 4)")
    parser.add_argument("--templates", type=int, default=0, help="distinct pre-built requests (default 48; quick 12)")
    parser.add_argument("--profile", action="store_true", help="py-spy the collector under max load (adds overhead)")
    parser.add_argument("--profile-main", action="store_true",
                        help="with --profile: only the receiving process")
    parser.add_argument("--keep-data", action="store_true", help="keep the data directories")
    parser.add_argument("--collector-env", action="append", default=[], metavar="KEY=VALUE",
                        help="environment for the collector (e.g. TRACEWATCH_WORKERS=3), repeatable")
    parser.add_argument("--paced-rate", type=float, default=0.0,
                        help="spans/s of the paced phase (default: half the protobuf phase's rate)")
    parser.add_argument("--warm-libraries", action="store_true",
                        help="do not drop the shared libraries from the page cache before each "
                             "collector starts (see evict_library_cache)")
    parser.add_argument("--pss-trace", action="store_true",
                        help="print each collector process's PSS (anonymous+file) every 2 s")
    parser.add_argument("--show-log", action="store_true",
                        help="print the collector's log after each phase (with TRACEWATCH_LOG_LEVEL=DEBUG: commit timings)")
    parser.add_argument("--phases", default="pb,json,grpc,paced,redaction",
                        help="comma-separated subset of pb,json,grpc,paced,redaction")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args(argv)
    phases = set(args.phases.split(","))
    quick = args.quick
    d_pb, d_json, d_grpc, d_paced = (8, 6, 8, 6) if quick else (60, 30, 60, 30)
    redaction_requests = 3 if quick else 12

    started = time.monotonic()
    bench = Bench(args)
    print(f"tracewatch ingest benchmark ({'quick' if quick else 'full'}); work dir {bench.work}", flush=True)
    try:
        bench.build_templates()
        o = bench.outcomes
        if "pb" in phases:
            o["pb"] = bench.run_max("http-pb", "HTTP protobuf", "http-pb", d_pb)
        if "json" in phases:
            o["json"] = bench.run_max("http-json", "HTTP OTLP/JSON", "http-json", d_json)
        if "grpc" in phases:
            o["grpc"] = bench.run_max("grpc", "gRPC", "grpc", d_grpc)
        if "paced" in phases:
            base = o["pb"].e2e_rate if "pb" in o and o["pb"].e2e_rate > 0 else 2000.0
            rate = args.paced_rate or max(base / 2, 500.0)
            o["paced"] = bench.run_paced(rate, d_paced)
        if "redaction" in phases:
            o["redaction"] = bench.run_redaction(redaction_requests)
        print_summary(bench, d_pb)
    finally:
        bench.stop_all()
        if not args.keep_data:
            for p in bench.work.glob("templates-*.pickle"):
                p.unlink()
        if not args.keep_data and not args.profile:
            shutil.rmtree(bench.work, ignore_errors=True)
    print(f"\ntotal benchmark time {time.monotonic() - started:.0f} s", flush=True)
    return 0


def print_summary(bench: Bench, d_pb: float) -> None:
    o = bench.outcomes
    rows: list[tuple[str, str, str, str]] = []

    def add(name: str, value: str, target: str, ok: bool | None) -> None:
        rows.append((name, value, target, "info" if ok is None else verdict(ok)))

    if "pb" in o:
        x = o["pb"]
        add(f"HTTP protobuf end to end, {d_pb:.0f} s, redaction off", f"{x.e2e_rate:,.0f} spans/s", f">= {TARGET_HTTP_PB:,.0f} spans/s", x.e2e_rate >= TARGET_HTTP_PB)
        add("  acknowledged rate (while sending)", f"{x.ack_rate:,.0f} spans/s", "", None)
        add("  spans lost (acked - queryable)", f"{x.acked_spans - x.stored:,} of {x.acked_spans:,}", "0", x.all_visible)
        add("  503 retries", f"{x.retries.get('503', 0)}", "", None)
    if "json" in o:
        x = o["json"]
        add("HTTP OTLP/JSON end to end, redaction off", f"{x.e2e_rate:,.0f} spans/s", f">= {TARGET_JSON:,.0f} spans/s", x.e2e_rate >= TARGET_JSON and x.all_visible)
    if "grpc" in o:
        x = o["grpc"]
        ref = o["pb"].e2e_rate if "pb" in o else 0
        share = x.e2e_rate / ref if ref else float("nan")
        add("gRPC end to end, redaction off", f"{x.e2e_rate:,.0f} spans/s ({share:.0%} of HTTP)", f">= {TARGET_GRPC_SHARE:.0%} of HTTP", bool(ref) and share >= TARGET_GRPC_SHARE and x.all_visible)
    if "paced" in o:
        x = o["paced"]
        acks, vis = x.extra["ack_ms"], x.extra["visible_s"]
        rate = x.extra["target_rate"]
        add(f"ack latency p50 at {rate:,.0f} spans/s", f"{pct(acks, 50):.1f} ms", f"<= {TARGET_ACK_P99_MS:.0f} ms", pct(acks, 50) <= TARGET_ACK_P99_MS)
        add(f"ack latency p99 at {rate:,.0f} spans/s", f"{pct(acks, 99):.1f} ms", f"<= {TARGET_ACK_P99_MS:.0f} ms", pct(acks, 99) <= TARGET_ACK_P99_MS)
        add(f"send-to-queryable p95 at {rate:,.0f} spans/s", f"{pct(vis, 95):.2f} s", f"<= {TARGET_VISIBLE_P95_S:.0f} s", pct(vis, 95) <= TARGET_VISIBLE_P95_S and x.extra["missing"] == 0)
    if "redaction" in o:
        x = o["redaction"]
        add(f"redaction ON end to end ({x.acked_spans:,} spans)", f"{x.e2e_rate:,.0f} spans/s", f">= {TARGET_REDACTED:.0f} spans/s", x.e2e_rate >= TARGET_REDACTED and x.all_visible)
        add("  cold start (first request -> queryable)", f"{x.extra['cold_s']:.1f} s", "", None)
    off = [v for k, v in o.items() if k != "redaction"]
    if off:
        peak = max(v.pss_tree_mb for v in off)
        add("collector memory, redaction off (process tree)", f"{peak:.0f} MB", f"<= {TARGET_RSS_OFF_MB:.0f} MB", peak <= TARGET_RSS_OFF_MB)
        add("  peak RSS: receiver / sum with workers", f"{max(v.rss_mb for v in off):.0f} / {max(v.rss_tree_mb for v in off):.0f} MB", "", None)
    if "redaction" in o:
        x = o["redaction"]
        add("collector memory, redaction on (process tree)", f"{x.pss_tree_mb:.0f} MB", f"<= {TARGET_RSS_ON_MB:.0f} MB", x.pss_tree_mb <= TARGET_RSS_ON_MB)
        add("  peak RSS: receiver / sum with workers", f"{x.rss_mb:.0f} / {x.rss_tree_mb:.0f} MB", "", None)
    if o:
        worst = max(o.values(), key=lambda v: v.commits_per_s)
        add(f"write commits per second, compaction apart (worst phase: {worst.name})", f"{worst.commits_per_s:.2f} /s", f"<= ~1 /s (<= {TARGET_COMMITS_PER_S})", worst.commits_per_s <= TARGET_COMMITS_PER_S)
        files = max(o.values(), key=lambda v: v.snapshot_files)
        add(f"Parquet files in the store (most: {files.name})", f"{files.snapshot_files} in snapshot, {files.disk_files} on disk", "", None)

    widths = [max(len(r[i]) for r in rows + [("figure", "value", "target", "result")]) for i in range(4)]
    print("\n" + "=" * (sum(widths) + 9))
    print("SUMMARY  (2-core machine; realistic RAG traffic; end to end = first request -> all spans queryable)")
    print("-" * (sum(widths) + 9))
    header = ("figure", "value", "target", "result")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    print("=" * (sum(widths) + 9))
    fails = [r[0].strip() for r in rows if r[3] == "FAIL"]
    print(f"{len(fails)} target(s) FAIL" + (": " + "; ".join(fails) if fails else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
