"""Run every benchmark in bench/ in turn and print their figures (`make bench`).

Pass names to run a subset: `python bench/run_all.py ingest redaction_quality`.
Benchmarks that read a store get one built from `sample_traces/` (ingested without
redaction, groundedness scored) in `bench/out/sample-store`, made once and reused.
Stores at 1M / 10M spans are not built here (tens of minutes): build one with
`tracewatch samples generate --out /tmp/s1m --scale 5` and `tracewatch ingest /tmp/s1m
--data-dir /tmp/store1m --no-redaction`, then run `bench/analytics_speed.py /tmp/store1m`
and `bench/app_speed.py /tmp/store1m`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STORE = HERE / "out" / "sample-store"

# name -> extra arguments ("{store}" is replaced by the sample store's path)
BENCHMARKS: dict[str, list[str]] = {
    "normalise_speed": [],
    "redaction_quality": [],
    "redaction_speed": [],
    "ingest": [],
    "groundedness_quality": ["--data-dir", "{store}"],
    "analytics_speed": ["{store}"],
    "app_speed": ["{store}"],
    "clusters_quality": [],
    "clusters_speed": [],
    "alerts_quality": ["--data-dir", "{store}"],
}


def ensure_sample_store() -> Path:
    if (STORE / "spans" / "_delta_log").is_dir():
        return STORE
    print(f"building the sample store in {STORE} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "tracewatch.cli", "ingest", str(ROOT / "sample_traces"),
                    "--data-dir", str(STORE), "--no-redaction", "--quiet"], check=True, cwd=ROOT)
    subprocess.run([sys.executable, "-c", "from pathlib import Path; "
                    "from analytics.groundedness import score_store; "
                    f"print(score_store(Path({str(STORE)!r})))"], check=True, cwd=ROOT)
    return STORE


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; known: {', '.join(BENCHMARKS)}")
        return 2
    failed = 0
    for name in names:
        args = BENCHMARKS[name]
        if any("{store}" in arg for arg in args):
            store = ensure_sample_store()
            args = [arg.replace("{store}", str(store)) for arg in args]
        print(f"\n=== {name} ===", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, str(HERE / f"{name}.py"), *args], cwd=ROOT)
        print(f"--- {name}: exit {result.returncode} in {time.monotonic() - started:.0f} s", flush=True)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
