"""The priority score of an open signal: severity first, then age, escalation and case factors.

score = severity weight (low 100, medium 200, high 300, critical 400)
      + urgency, at most 99 points, so severity always ranks first:
          one point per 3 days open (at most 30, reached at 90 days)
        + 15 when the signal is escalated (open longer than its rule allows)
        + the case's bonus from rules/priority.yaml (detention, minors, departure close by)

Within one severity, older, escalated signals on urgent cases come first.
"""

from __future__ import annotations

SEVERITY_WEIGHT: dict[str, int] = {"low": 100, "medium": 200, "high": 300, "critical": 400}
AGE_CAP_DAYS = 90
ESCALATION_BONUS = 15
URGENCY_CAP = 99


def score(severity: str, days_open: int, escalated: bool, case_bonus: int = 0) -> float:
    age = min(max(days_open, 0), AGE_CAP_DAYS) / 3
    urgency = min(age + (ESCALATION_BONUS if escalated else 0) + max(case_bonus, 0), URGENCY_CAP)
    return float(SEVERITY_WEIGHT.get(severity, 0) + urgency)
