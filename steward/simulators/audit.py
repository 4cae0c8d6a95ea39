"""The world's audit trail: every executed action and every outcome, with time and cost."""

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class AuditRecord:
    """One line of the trail.

    ``kind`` is ``action`` (an action executed; ``proposed`` is what the policy asked
    for) or ``outcome`` (a promotion, a rejection, a page answered, an incident ended).
    """

    time_days: float
    kind: str
    action: str
    proposed: str
    reason: str
    cost: float
    detail: str
    version_id: int


class AuditTrail:
    """Append-only list of :class:`AuditRecord`."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def add(
        self,
        time_days: float,
        kind: str,
        action: str,
        *,
        proposed: str = "",
        reason: str = "",
        cost: float = 0.0,
        detail: str = "",
        version_id: int = -1,
    ) -> AuditRecord:
        """Append a record and return it."""
        record = AuditRecord(
            round(time_days, 6), kind, action, proposed or action, reason, cost, detail, version_id
        )
        self.records.append(record)
        return record

    def to_frame(self) -> pd.DataFrame:
        """The trail as a table."""
        return pd.DataFrame(
            [asdict(r) for r in self.records], columns=list(AuditRecord.__annotations__)
        )
