"""Alert quality on the sample ground truth: replay the default rules over two weeks.

    python bench/alerts_quality.py [--data-dir /tmp/alerts-store] [--samples sample_traces]
                                   [--rules alerts/rules.yaml] [--step 5m]

Builds the store when it is empty (``tracewatch ingest --no-redaction`` plus the built-in
groundedness scorer), replays the rules in data time from the first day to the last, and
checks, per incident of ``ground_truth.json``:
- detected: some alert whose slice (group + named cause) agrees with the incident's slice
  fires within [onset, end]; latency = first such alert - onset, at most 30 min (24 h for
  ``gradual_drift``);
- cause: that first alert's named cause names every dimension of the true slice that alerts
  can name (service_name, prompt_version, model_name, provider) with the true value, and no
  dimension with another value;
and over the clean days: at most one alert per clean week (alerts fired on clean days,
scaled to 7 days).  Alerts on non-clean days matching no incident are listed for review.
Prints a per-incident table and PASS/FAIL; exit status 0 on PASS.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alerts.evaluate import AlertEvent, max_lookback, replay  # noqa: E402
from alerts.frame import load_trace_frame  # noqa: E402
from alerts.rules import load_rules, parse_duration  # noqa: E402
from alerts.state import Transition  # noqa: E402
from analytics.views import open_store  # noqa: E402

NAMEABLE = ("service_name", "prompt_version", "model_name", "provider")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)


def _accepts(true_value: object, value: str) -> bool:
    return value in true_value if isinstance(true_value, list) else value == true_value


def alert_slice(event: AlertEvent) -> dict[str, str]:
    named = dict(event.detail.get("group", {}))
    if event.cause is not None:
        named.update(event.cause.slice)
    return {k: v for k, v in named.items() if v is not None}


def consistent(named: dict[str, str], truth: dict[str, object]) -> bool:
    """No named dimension contradicts the true slice."""
    return all(_accepts(truth[k], v) for k, v in named.items() if k in truth)


def cause_is_true_slice(named: dict[str, str], truth: dict[str, object]) -> bool:
    required = [k for k in truth if k in NAMEABLE]
    return consistent(named, truth) and all(k in named for k in required)


def ensure_store(data_dir: Path, samples: Path) -> None:
    if (data_dir / "spans").exists():
        return
    print(f"building store {data_dir} from {samples} ...", flush=True)
    subprocess.run([sys.executable, "-m", "tracewatch.cli", "ingest", str(samples),
                    "--data-dir", str(data_dir), "--no-redaction", "--quiet"], check=True)
    from analytics.groundedness import score_store
    score_store(data_dir)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/alerts-store"))
    parser.add_argument("--samples", type=Path, default=Path("sample_traces"))
    parser.add_argument("--rules", type=Path,
                        default=Path(__file__).resolve().parents[1] / "alerts" / "rules.yaml")
    parser.add_argument("--step", default="5m")
    args = parser.parse_args()
    truth = json.loads((args.samples / "ground_truth.json").read_text())
    ensure_store(args.data_dir, args.samples)
    rules = load_rules(args.rules)
    start, end = _ts(truth["time_range"]["start"]), _ts(truth["time_range"]["end"])
    con = open_store(args.data_dir)
    frame = load_trace_frame(con, start - max_lookback(rules), end)
    con.close()
    began = time.perf_counter()
    events = replay(frame, rules, start, end, parse_duration(args.step))
    elapsed = time.perf_counter() - began
    fired = [e for e in events if e.transition is Transition.FIRING]
    print(f"replay {start:%Y-%m-%d} .. {end:%Y-%m-%d} step {args.step}: {len(rules.enabled())} "
          f"rules, {frame.height} traces, {len(fired)} alerts fired, {elapsed:.1f} s\n")

    ok = True
    matched_ids: set[str] = set()
    header = f"{'incident':9} {'kind':22} {'onset':17} {'first alert':17} {'delay':>8} " \
             f"{'limit':>6} {'rule':20} {'named cause':55} verdict"
    print(header)
    print("-" * len(header))
    for incident in truth["incidents"]:
        onset, stop = _ts(incident["onset"]), _ts(incident["end"])
        slice_ = incident["affected_slice"]
        limit = timedelta(hours=24) if incident["kind"] == "gradual_drift" \
            else timedelta(minutes=30)
        hits = [e for e in fired if onset <= e.at <= stop and consistent(alert_slice(e), slice_)]
        matched_ids.update(e.alert_id for e in hits)
        if not hits:
            ok = False
            print(f"{incident['incident_id']:9} {incident['kind']:22} {onset:%m-%d %H:%M}       "
                  f"{'-':17} {'-':>8} {'-':>6} {'-':20} {'-':55} FAIL (missed)")
            continue
        first = min(hits, key=lambda e: e.at)
        delay = first.at - onset
        named = alert_slice(first)
        cause_ok = cause_is_true_slice(named, slice_)
        verdict = "ok" if delay <= limit and cause_ok else "FAIL"
        if delay > limit:
            verdict += " (late)"
        if not cause_ok:
            verdict += " (cause)"
        ok = ok and verdict == "ok"
        cause_text = ",".join(f"{k}={v}" for k, v in named.items())
        print(f"{incident['incident_id']:9} {incident['kind']:22} {onset:%m-%d %H:%M}       "
              f"{first.at:%m-%d %H:%M}       {int(delay.total_seconds() // 60):>6}m "
              f"{int(limit.total_seconds() // 60):>5}m {first.rule:20} {cause_text[:55]:55} "
              f"{verdict}")

    clean_days = set(truth["clean_days"])
    clean = [e for e in fired if e.at.strftime("%Y-%m-%d") in clean_days
             or (e.at - timedelta(microseconds=1)).strftime("%Y-%m-%d") in clean_days
             and e.at.time() == datetime.min.time()]
    per_week = len(clean) / max(1, len(clean_days)) * 7
    print(f"\nclean days {sorted(clean_days)}: {len(clean)} alert(s) = {per_week:.2f} per "
          f"clean week (limit 1)")
    for event in clean:
        print(f"  false: {event.at:%m-%d %H:%M} {event.rule} {event.group_key} {event.verdict}")
    ok = ok and per_week <= 1.0
    other = [e for e in fired if e.alert_id not in matched_ids and e not in clean]
    print(f"alerts on incident days matching no incident (not counted; review): {len(other)}")
    for event in other:
        cause = event.cause.describe() if event.cause else ""
        print(f"  {event.at:%m-%d %H:%M} {event.rule} {event.group_key}: {event.verdict} | "
              f"{cause[:90]}")
    print("\nPASS" if ok else "\nFAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
