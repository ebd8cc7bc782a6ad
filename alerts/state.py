"""The alert state machine: ok -> pending -> firing -> resolving -> (resolved) ok.

One ``AlertState`` per fingerprint (rule + group).  ``step(state, condition, at, rule)``
returns the new state and the transition to announce, if any:

- ok, condition true: pending since ``at`` (firing at once when ``pending`` is 0);
- pending, true for ``rule.pending``: firing (announce FIRING, once);
- pending, false: back to ok (a blip is never announced);
- firing, false: resolving since ``at``; resolving, true again: firing (same alert, no new
  message: hysteresis); resolving, false for ``rule.cooldown``: resolved (announce RESOLVED);
- condition None (too few samples): nothing changes, time does not count towards pending.

A fingerprint has at most one open alert; announcing is keyed by ``alert_id``, so a restart
that reloads the state never announces the same alert twice.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from datetime import datetime
from enum import Enum
from typing import Any

from alerts.rules import Rule
from alerts.series import Group


class Phase(str, Enum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVING = "resolving"


class Transition(str, Enum):
    FIRING = "firing"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class AlertState:
    fingerprint: str
    phase: Phase = Phase.OK
    since: datetime | None = None       # entered the current phase
    anchor: datetime | None = None      # condition first held (baseline frozen here)
    alert_id: str | None = None
    started_at: datetime | None = None  # fired

    def to_json(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str | None:
            return moment.isoformat() if moment else None
        return {"fingerprint": self.fingerprint, "phase": self.phase.value,
                "since": iso(self.since), "anchor": iso(self.anchor),
                "alert_id": self.alert_id, "started_at": iso(self.started_at)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> AlertState:
        def parse(text: Any) -> datetime | None:
            return datetime.fromisoformat(text) if isinstance(text, str) else None
        return cls(str(data["fingerprint"]), Phase(data.get("phase", "ok")),
                   parse(data.get("since")), parse(data.get("anchor")),
                   data.get("alert_id"), parse(data.get("started_at")))


def fingerprint_of(rule_name: str, group: Group) -> str:
    """Stable id of a rule's group: the same alert across runs and restarts."""
    key = rule_name + "|" + "|".join(f"{d}={v}" for d, v in group)
    return hashlib.blake2b(key.encode(), digest_size=8).hexdigest()


def group_key_of(group: Group) -> str:
    """``service_name=agent,provider=openai`` ('' for an ungrouped rule)."""
    return ",".join(f"{dim}={'' if value is None else value}" for dim, value in group)


def step(state: AlertState, condition: bool | None, at: datetime,
         rule: Rule) -> tuple[AlertState, Transition | None]:
    """Advance one evaluation; see the module docstring."""
    if condition is None:
        return state, None
    phase = state.phase
    if phase is Phase.OK:
        if not condition:
            return state, None
        pending = replace(state, phase=Phase.PENDING, since=at, anchor=at)
        return _maybe_fire(pending, at, rule)
    if phase is Phase.PENDING:
        if not condition:
            return AlertState(state.fingerprint), None
        return _maybe_fire(state, at, rule)
    if phase is Phase.FIRING:
        if condition:
            return state, None
        resolving = replace(state, phase=Phase.RESOLVING, since=at)
        return _maybe_resolve(resolving, at, rule)
    if condition:  # resolving, breached again: still the same alert
        return replace(state, phase=Phase.FIRING, since=at), None
    return _maybe_resolve(state, at, rule)


def _maybe_fire(state: AlertState, at: datetime,
                rule: Rule) -> tuple[AlertState, Transition | None]:
    assert state.since is not None
    if at - state.since < rule.pending:
        return state, None
    alert_id = hashlib.blake2b(f"{state.fingerprint}|{at.isoformat()}".encode(),
                               digest_size=8).hexdigest()
    return replace(state, phase=Phase.FIRING, since=at, alert_id=alert_id,
                   started_at=at), Transition.FIRING


def _maybe_resolve(state: AlertState, at: datetime,
                   rule: Rule) -> tuple[AlertState, Transition | None]:
    assert state.since is not None
    if at - state.since < rule.cooldown:
        return state, None
    return replace(state, phase=Phase.OK, since=at, anchor=None), Transition.RESOLVED
