"""Alert history: the Delta table ``alerts`` (schema ``collector.schema.ALERTS_SCHEMA``).

One row per alert (``alert_id``), upserted with a Delta merge: a FIRING event inserts the row
(state 'firing'), a RESOLVED event updates it to 'resolved' with ``resolved_at``, and a
delivered Slack message sets ``notified_at``.  So the ``alerts`` view shows each alert once,
in its latest state.  ``detail`` is JSON: verdict, windows, cause, example trace ids.

The evaluator's own working state (pending timers, frozen baselines) is a small JSON file
next to it (``state.json`` under ``alerts_state/``), replaced atomically.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import TableNotFoundError

from alerts.evaluate import AlertEvent
from alerts.state import AlertState, Transition
from collector.schema import ALERTS_SCHEMA, ALERTS_TABLE, table_path


def _row(event: AlertEvent, notified_at: datetime | None) -> dict[str, object]:
    return {
        "alert_id": event.alert_id, "rule": event.rule, "fingerprint": event.fingerprint,
        "state": event.transition.value, "severity": event.severity, "metric": event.metric,
        "group_key": event.group_key, "value": event.value, "baseline": event.baseline,
        "started_at": event.started_at, "resolved_at": event.resolved_at,
        "notified_at": notified_at, "detail": event.detail_json(),
    }


def record_events(data_dir: Path, events: list[AlertEvent],
                  notified_at: dict[str, datetime] | None = None) -> None:
    """Upsert the alerts of ``events`` into the history table (one commit)."""
    if not events:
        return
    notified_at = notified_at or {}
    rows: dict[str, dict[str, object]] = {}
    for event in events:  # the last event of an alert wins; keep its firing detail
        row = _row(event, notified_at.get(event.alert_id))
        if event.transition is Transition.RESOLVED and event.alert_id in rows:
            row["detail"] = rows[event.alert_id]["detail"]
        rows[event.alert_id] = row
    table = pa.Table.from_pylist(list(rows.values()), schema=ALERTS_SCHEMA)
    path = table_path(data_dir, ALERTS_TABLE)
    try:
        delta = DeltaTable(str(path))
    except TableNotFoundError:
        write_deltalake(str(path), table, mode="append")
        return
    # A resolve keeps the firing row's detail and notified_at unless it brings its own.
    (
        delta.merge(source=table, predicate="t.alert_id = s.alert_id", source_alias="s",
                    target_alias="t")
        .when_matched_update(updates={
            "state": "s.state", "value": "s.value", "baseline": "s.baseline",
            "resolved_at": "s.resolved_at",
            "notified_at": "coalesce(s.notified_at, t.notified_at)",
            "detail": "CASE WHEN s.state = 'firing' THEN s.detail ELSE t.detail END",
        })
        .when_not_matched_insert_all()
        .execute()
    )


def state_path(data_dir: Path) -> Path:
    return data_dir / "alerts_state" / "state.json"


def load_states(data_dir: Path) -> dict[str, AlertState]:
    """The evaluator's states ({} when none were saved)."""
    path = state_path(data_dir)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError):
        return {}  # a damaged state file: start afresh rather than crash the loop
    states = [AlertState.from_json(item) for item in data.get("states", [])]
    return {state.fingerprint: state for state in states}


def save_states(data_dir: Path, states: dict[str, AlertState]) -> None:
    path = state_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    body = {"states": [state.to_json() for state in states.values()]}
    tmp.write_text(json.dumps(body, indent=1), encoding="utf-8")
    os.replace(tmp, path)
