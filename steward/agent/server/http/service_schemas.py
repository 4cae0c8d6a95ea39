"""The HTTP contract of the services' routes: ingestion answers, counters, acknowledgements.

The request bodies (rows in the tables' schema) are documented by
:mod:`~steward.agent.server.http.events`, per service.
"""

from pydantic import BaseModel, Field

from steward.agent.ingestion import BatchReport, IngestionCounts

MAX_UNKNOWN_LISTED = 100


class IngestionCountsModel(BaseModel):
    """What a service's ingestion accepted, refused and ignored since it was configured."""

    predictions: int = Field(description="Predictions accepted (new prediction ids).")
    labels: int = Field(description="Labels accepted (joined to a known prediction).")
    retractions: int = Field(description="Stored labels a later event retracted.")
    duplicates: int = Field(description="Events already stored: no-ops.")
    unknown_prediction: int = Field(
        description="Labels whose prediction id was never ingested (not stored)."
    )
    refused: int = Field(description="Rows of refused batches (a bad row refuses its batch).")
    late: int = Field(
        description="Stored events older than what the service's log held when they came due"
        " (kept, but too late for the running log)."
    )

    @classmethod
    def of(cls, counts: IngestionCounts) -> "IngestionCountsModel":
        """The counters as the answer shows them."""
        return cls(**counts.to_dict())


class BatchAnswer(BaseModel):
    """What one batch did, once its new events are committed."""

    service_id: str
    rows: int = Field(description="Rows in the batch.")
    accepted: int = Field(description="New events stored (committed before this answer).")
    duplicates: int = Field(description="Events already stored: no-ops.")
    retractions: int = Field(description="Stored labels this batch retracted.")
    unknown_prediction: int = Field(
        description="Labels whose prediction id was never ingested: counted, not stored"
        " (send the predictions first)."
    )
    unknown_prediction_ids: list[str] = Field(
        description=f"Those prediction ids (the first {MAX_UNKNOWN_LISTED})."
    )
    counts: IngestionCountsModel = Field(description="The service's counters after the batch.")

    @classmethod
    def of(
        cls, service_id: str, rows: int, report: BatchReport, counts: IngestionCounts
    ) -> "BatchAnswer":
        """The answer to a committed batch."""
        return cls(
            service_id=service_id,
            rows=rows,
            accepted=report.accepted,
            duplicates=report.duplicates,
            retractions=report.retractions,
            unknown_prediction=report.unknown_prediction,
            unknown_prediction_ids=list(report.unknown_ids[:MAX_UNKNOWN_LISTED]),
            counts=IngestionCountsModel.of(counts),
        )


class IngestionStatus(BaseModel):
    """A service's ingestion so far."""

    service_id: str
    counts: IngestionCountsModel
    last_decision_days: float | None = Field(
        description="The time of its last decision by service (days; null: none yet)."
    )


class AcknowledgeAnswer(BaseModel):
    """A paged human's answer, recorded in the service's registry."""

    service_id: str
    acknowledge_requests: int = Field(
        description="Answers recorded so far; the backend that executes actions applies each"
        " one (a page answered; the hold lifts once every page is)."
    )
    human_hold: bool = Field(
        description="Whether model changes are on hold now, as the registry says (until the"
        " backend applies the answer, it still holds)."
    )
    acknowledgements: int = Field(description="Pages answered, as the registry says now.")
