"""A training job's state changes: every write to a job row after it is created goes through here.

Transitions open and close SageMaker's SecondaryStatusTransitions consistently; the runner, the service's
recovery after a restart and StopTrainingJob from any process all use these functions.
"""

from __future__ import annotations

from typing import Any

from tailor.db import Database, utcnow
from tailor.jobs.store import MetricPointRow, TrainingJobRow

TERMINAL = ("Completed", "Failed", "Stopped")
HANDED_OVER = "handed_over"  # the stop "reason" a runner sees once another server owns its job


def _fenced(row: TrainingJobRow | None, owner: str | None) -> bool:
    """True when a write must not happen: the row is gone, or ``owner`` (a server id) no longer owns it —
    another server took the job over after this one missed its heartbeats; it alone writes the job now."""
    return row is None or (owner is not None and row.owner_server != owner)


def transition(
    db: Database,
    name: str,
    secondary: str,
    message: str,
    *,
    status: str | None = None,
    owner: str | None = None,
    **fields: Any,
) -> None:
    """Close the current SecondaryStatusTransition and open ``secondary``; terminal ones are closed at once.
    With ``owner``, only while that server owns the job."""
    now = utcnow()
    with db.session() as s:
        # Locked (PostgreSQL) so the owner's transition and another server's stop request never lose a write.
        row = s.get(TrainingJobRow, name, with_for_update=True)
        if _fenced(row, owner):
            return
        assert row is not None
        items = [dict(t) for t in row.transitions]
        if items and items[-1].get("EndTime") is None:
            items[-1]["EndTime"] = now.isoformat()
        entry: dict[str, Any] = {"Status": secondary, "StartTime": now.isoformat(), "StatusMessage": message}
        if status in TERMINAL:
            entry["EndTime"] = now.isoformat()
        items.append(entry)
        row.transitions = items
        row.secondary_status = secondary
        if status:
            row.status = status
        row.last_modified_time = now
        for key, value in fields.items():
            setattr(row, key, value)


def set_message(db: Database, name: str, message: str, *, owner: str | None = None) -> None:
    """Update the open transition's StatusMessage (progress) without a new transition."""
    with db.session() as s:
        row = s.get(TrainingJobRow, name, with_for_update=True)
        if _fenced(row, owner) or row is None or not row.transitions:
            return
        items = [dict(t) for t in row.transitions]
        if items[-1].get("StatusMessage") == message:
            return
        items[-1]["StatusMessage"] = message
        row.transitions = items
        row.last_modified_time = utcnow()


def update(db: Database, name: str, *, owner: str | None = None, **fields: Any) -> None:
    with db.session() as s:
        row = s.get(TrainingJobRow, name, with_for_update=True)
        if not _fenced(row, owner):
            for key, value in fields.items():
                setattr(row, key, value)


def stop_requested(db: Database, name: str, *, owner: str | None = None) -> str | None:
    """Why the job must stop (a stop request's reason, or ``HANDED_OVER``), None while it runs on."""
    with db.session() as s:
        row = s.get(TrainingJobRow, name)
        if row is not None and owner is not None and row.owner_server != owner:
            return HANDED_OVER
        return (row.stop_reason or "user") if row is not None and row.stop_requested else None


def final_metrics(db: Database, name: str) -> list[dict[str, Any]]:
    """FinalMetricDataList: the last value of each metric, in first-seen order."""
    with db.session() as s:
        rows = s.query(MetricPointRow).filter_by(job_name=name).order_by(MetricPointRow.id).all()
        last: dict[str, MetricPointRow] = {}
        for r in rows:
            last[r.name] = r
        return [{"MetricName": r.name, "Value": r.value, "Timestamp": r.timestamp.isoformat()} for r in last.values()]
