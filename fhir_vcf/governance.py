"""The CDS committee's numbers: cards shown, accepted and overridden (with reasons), per decision and
per week, read from the store's audit and feedback tables.

A card counts as shown in the week of its hook call (audit rows answered 200). Its outcome is the
clinician's latest reported interaction with it (feedback may arrive more than once per card;
`fhir_vcf.store`): accepted, overridden, or none reported. A card is filed under its own decision
(`audit_card.decision`), or "unknown" for cards recorded before that column existed in calls that
had several decisions. Override reasons are the coded `overrideReason.reason` (the free-text comment
is never stored). No patient identifier is read: the numbers are counts.

Week buckets are made here, in Python, from plain rows: the SQL stays the same on SQLite and
PostgreSQL (their week functions differ), and a quarter of cards is a few thousand small rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from fhir_vcf.store import Store, StoreError, audit, audit_card, feedback

DECISIONS = ("eligible", "not-eligible", "needs-review", "insufficient-data")
OUTCOMES = ("accepted", "overridden")
NO_REASON = "(no reason given)"


def week_of(moment: datetime | date) -> date:
    """The Monday that starts the ISO week of `moment`."""
    day = moment.date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def _empty() -> dict[str, int]:
    return {"shown": 0, "accepted": 0, "overridden": 0, "noFeedback": 0}


def summary(store: Store, *, weeks: int = 12, now: datetime) -> dict[str, Any]:
    """The governance numbers for the `weeks` ISO weeks up to and including the one of `now` (UTC)."""
    first_week = week_of(now) - timedelta(weeks=weeks - 1)
    since = datetime.combine(first_week, datetime.min.time())
    cards_query = (
        sa.select(audit_card.c.card_uuid, audit_card.c.decision, audit.c.decision.label("call_decision"),
                  audit.c.created)
        .select_from(audit_card.join(audit, audit.c.id == audit_card.c.audit_id))
        .where(audit.c.created >= since, audit.c.status == 200)
    )
    feedback_query = (
        sa.select(feedback.c.card_uuid, feedback.c.outcome, feedback.c.override_code, feedback.c.override_system,
                  feedback.c.override_display, feedback.c.outcome_timestamp, feedback.c.id)
        .select_from(feedback.join(audit_card, audit_card.c.card_uuid == feedback.c.card_uuid)
                     .join(audit, audit.c.id == audit_card.c.audit_id))
        .where(audit.c.created >= since, audit.c.status == 200)
    )
    try:
        with store.engine.connect() as conn:
            cards = conn.execute(cards_query).all()
            reports = conn.execute(feedback_query).all()
    except SQLAlchemyError as exc:
        raise StoreError(f"store: could not read the governance numbers ({type(exc).__name__})") from exc

    latest: dict[str, Any] = {}
    for row in sorted(reports, key=lambda r: (r.outcome_timestamp, r.id)):
        latest[row.card_uuid] = row  # the clinician's last word on the card

    by_week: dict[date, dict[str, Any]] = {
        first_week + timedelta(weeks=i): {"total": _empty(), "byDecision": defaultdict(_empty)} for i in range(weeks)
    }
    by_decision: dict[str, dict[str, int]] = defaultdict(_empty)
    reasons_by_decision: dict[str, Counter[tuple[str, str, str]]] = defaultdict(Counter)
    reasons: Counter[tuple[str, str, str]] = Counter()
    totals = _empty()
    seen: set[str] = set()
    for card in cards:
        if card.card_uuid in seen:
            continue
        seen.add(card.card_uuid)
        decision = card.decision or (card.call_decision if card.call_decision and "," not in card.call_decision
                                     else "unknown")
        week = by_week.setdefault(week_of(card.created), {"total": _empty(), "byDecision": defaultdict(_empty)})
        report = latest.get(card.card_uuid)
        outcome = report.outcome if report is not None and report.outcome in OUTCOMES else "noFeedback"
        for bucket in (totals, by_decision[decision], week["total"], week["byDecision"][decision]):
            bucket["shown"] += 1
            bucket[outcome] += 1
        if outcome == "overridden":
            key = (report.override_code or NO_REASON, report.override_display or "", report.override_system or "")
            reasons[key] += 1
            reasons_by_decision[decision][key] += 1

    def reason_list(counter: Counter[tuple[str, str, str]]) -> list[dict[str, Any]]:
        return [{"code": code, "display": display or code, "system": system, "count": count}
                for (code, display, system), count in counter.most_common()]

    order = {d: i for i, d in enumerate(DECISIONS)}
    return {
        "generated": now.replace(microsecond=0).isoformat() + "Z",
        "weeks": weeks,
        "from": first_week.isoformat(),
        "to": (week_of(now) + timedelta(days=6)).isoformat(),
        "totals": totals,
        "byDecision": [
            {"decision": d, **counts, "overrideReasons": reason_list(reasons_by_decision[d])}
            for d, counts in sorted(by_decision.items(), key=lambda item: order.get(item[0], len(order)))
        ],
        "byWeek": [
            {"week": w.isoformat(), **data["total"],
             "byDecision": {d: c for d, c in sorted(data["byDecision"].items(),
                                                    key=lambda item: order.get(item[0], len(order)))}}
            for w, data in sorted(by_week.items())
        ],
        "overrideReasons": reason_list(reasons),
    }


__all__ = ["DECISIONS", "summary", "week_of"]
