"""The audit trail's rows: how decisions and outcomes are written and read back.

The tables are :func:`steward.agent.decision_log.sql_tables` (the contract the offline
evaluation reads), created if missing, and the ingested events' tables
(:mod:`steward.agent.ingestion_sql`). :class:`AuditTables` does the SQL; when the
commits happen is :class:`steward.agent.server.audit.AuditLog`'s business.

SQLite (the default) runs in WAL mode with a busy timeout; JSON cells keep NaN for a
missing portfolio value, as simulation logs do. On other databases (PostgreSQL) JSON
has no NaN, so non-finite numbers in JSON cells are written as ``null``.
"""

import json
import math
import operator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from steward.agent import ingestion_sql
from steward.agent.decision_log import DECISION_COLUMNS, JSON_COLUMNS, DecisionRecord, sql_tables
from steward.agent.server.audit.jobs import AuditUnavailableError
from steward.errors import ConfigError
from steward.simulators.actions import Action

_COLUMN_VALUES = operator.attrgetter(*DECISION_COLUMNS)  # a record's values, in column order
_JSON_INDEXES = tuple(i for i, name in enumerate(DECISION_COLUMNS) if name in JSON_COLUMNS)
_ESCALATE = int(Action.ESCALATE)  # a decision that executed it sent a page


class StoredOutcome(NamedTuple):
    """An outcome row, and whether this call created it."""

    outcome_id: int
    decision_id: str
    reward: float
    observed_at: str
    created: bool


class RequestKey(NamedTuple):
    """A client's ``Idempotency-Key`` for a decision request, and the request's digest."""

    key: str
    request_sha256: str


class KeyedDecision(NamedTuple):
    """The decision stored under a service's idempotency key."""

    request_sha256: str
    row: dict[str, Any]


def key_table(metadata: sa.MetaData) -> sa.Table:
    """``decision_keys``: one decision per (service, idempotency key), across replicas."""
    return sa.Table(
        "decision_keys",
        metadata,
        sa.Column("service_id", sa.String(128), primary_key=True),
        sa.Column("idempotency_key", sa.String(255), primary_key=True),
        sa.Column("request_sha256", sa.String(64), nullable=False),
        sa.Column(
            "decision_id", sa.String(64), sa.ForeignKey("decisions.decision_id"), nullable=False
        ),
    )


class ServiceHistory(NamedTuple):
    """What a service's decision state is rebuilt from after a restart.

    ``replay`` holds the portfolios to feed through a fresh encoder, oldest first: the
    service's first portfolio (it fixes the traffic baseline) and its latest ones, or all of
    them. ``executed``: the action each replayed decision executed, in the same order.
    ``last_page_day``: the time of its last decision that executed escalate (NaN: none).
    """

    next_step: int
    last_action: int | None
    replay: list[dict[str, Any]]
    last_page_day: float = math.nan
    executed: tuple[int, ...] = ()


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    return value


def _strict_json(value: Any) -> str:
    return json.dumps(_finite_or_none(value), allow_nan=False)


def json_cell(value: Any) -> str:
    """``json.dumps(value)``'s JSON (the text SQLAlchemy's JSON type writes), but quicker.

    orjson writes NaN and infinities as ``null`` (and refuses integers past 64 bits):
    whenever its text holds a ``null`` (or it refuses), the cell is ``json.dumps``'s, so a
    missing portfolio value stays NaN, as in simulation logs. A float32 array (the
    observation) becomes its values' shortest float32 decimals
    (:func:`steward.agent.decision_log.observation_matrix` reads them back).
    """
    try:
        text = orjson.dumps(value, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError:  # orjson.JSONEncodeError
        return json.dumps(_plain(value))
    if b"null" in text:
        return json.dumps(_plain(value))
    return text.decode()


def _plain(value: Any) -> Any:
    return value.tolist() if isinstance(value, np.ndarray) else value


def _first_line(err: BaseException) -> str:
    lines = str(err).splitlines()
    return f"{type(err).__name__}: {lines[0]}" if lines else type(err).__name__


def redacted(url: str) -> str:
    """``url`` with its password shown as ``***`` (for messages and logs)."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL: show none of it
        return "<a URL SQLAlchemy cannot parse>"


WAL_BACKSTOP_PAGES = 10_000  # a write connection's own automatic checkpoint (~40 MB)


def write_connection(engine: Engine) -> Connection:
    """A connection for writes; on SQLite its automatic WAL checkpoint (two fsyncs, in
    whichever commit crosses 1,000 pages) pushed back to :data:`WAL_BACKSTOP_PAGES`: the
    audit writer process's checkpointer thread runs passive checkpoints instead."""
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(f"PRAGMA wal_autocheckpoint={WAL_BACKSTOP_PAGES}")
    return conn


def make_engine(url: str, synchronous: str = "NORMAL") -> Engine:
    """An engine for ``url``; SQLite gets WAL, ``synchronous`` and a busy timeout."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return sa.create_engine(url, json_serializer=_strict_json, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, json_serializer=json.dumps)

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=5000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    return engine


def open_tables(url: str, synchronous: str = "NORMAL") -> "AuditTables":
    """The audit tables at ``url`` (created if missing).

    Raises:
        ConfigError: the database cannot be reached or refuses the URL (the message
            shows the URL without its password).
    """
    try:
        return AuditTables(make_engine(url, synchronous))
    except (sa.exc.SQLAlchemyError, ImportError, OSError) as err:
        reason = _first_line(err)
        raise ConfigError(
            "db",
            f"cannot open the audit database {redacted(url)} ({reason.replace(url, '')})",
            "start the database, or correct the URL, its user and its driver",
        ) from None


class AuditTables:
    """The ``decisions`` and ``outcomes`` tables of one database.

    Args:
        engine: the database (tables created if missing).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        metadata = sa.MetaData()
        self.decisions, self.outcomes = sql_tables(metadata)
        self.keys = key_table(metadata)
        metadata.create_all(engine)
        if engine.dialect.name in ("sqlite", "postgresql"):  # the events ingestion stores
            ingestion_sql.metadata.create_all(engine)
        self.sqlite_insert: str | None = None  # the decisions INSERT in the driver's paramstyle
        if engine.dialect.name == "sqlite":
            insert = sa.insert(self.decisions).compile(
                dialect=engine.dialect, column_keys=list(DECISION_COLUMNS)
            )
            assert list(insert.positiontup or []) == list(DECISION_COLUMNS), insert.positiontup
            self.sqlite_insert = str(insert)

    def decision_row(self, record: DecisionRecord) -> Any:
        """What :meth:`write` takes for a decision: on SQLite the driver's parameters (JSON
        cells serialised as SQLAlchemy's JSON type would), elsewhere a dict of columns."""
        if self.sqlite_insert is None:
            row = {name: getattr(record, name) for name in DECISION_COLUMNS}
            row["observation"] = _plain(row["observation"])
            return row
        values = list(_COLUMN_VALUES(record))
        for index in _JSON_INDEXES:
            values[index] = json_cell(values[index])
        return values

    def key_row(self, record: DecisionRecord, key: RequestKey) -> dict[str, Any]:
        """The ``decision_keys`` row of a decision requested with an idempotency key."""
        return {
            "service_id": record.service_id,
            "idempotency_key": key.key,
            "request_sha256": key.request_sha256,
            "decision_id": record.decision_id,
        }

    def write(self, conn: Connection, writes: list[tuple[str, Any]]) -> list[Any]:
        """Commit ``(kind, row)`` writes in one transaction, in order; a result per write.

        A decision's row is :meth:`decision_row`'s and its result ``None``; a
        ``keyed_decision`` is a (:meth:`decision_row`, :meth:`key_row`) pair, written
        together, result ``None``; an outcome's result is :meth:`store_outcome`'s; an
        ``events`` write is a batch of ingested events
        (:func:`steward.agent.ingestion_sql.write_events`), result the rows changed.
        """
        if self.sqlite_insert is not None and all(kind == "decision" for kind, _ in writes):
            self._commit_decisions(conn, [row for _, row in writes])
            return [None] * len(writes)
        results: list[Any] = []
        with conn.begin():
            pending: list[Any] = []
            for kind, row in writes:
                if kind == "decision":
                    pending.append(row)
                    results.append(None)
                    continue
                self.insert_decisions(conn, pending)
                pending = []
                if kind == "keyed_decision":
                    decision, key = row
                    self.insert_decisions(conn, [decision])
                    conn.execute(sa.insert(self.keys), [key])
                    results.append(None)
                    continue
                if kind == "events":
                    results.append(ingestion_sql.write_events(conn, row))
                    continue
                results.append(self.store_outcome(conn, row))
            self.insert_decisions(conn, pending)
        return results

    def _commit_decisions(self, conn: Connection, rows: list[Any]) -> None:
        """Insert and commit decision rows on SQLite through the driver alone.

        The same transaction SQLAlchemy would run (the driver begins it at the INSERT and
        ``commit()`` ends it; ``conn`` holds no transaction between writes), without its
        per-transaction machinery, which costs more than the insert.
        """
        driver = conn.connection.driver_connection
        assert driver is not None and self.sqlite_insert is not None
        try:
            driver.executemany(self.sqlite_insert, rows)
            driver.commit()
        except BaseException:
            driver.rollback()
            raise

    def insert_decisions(self, conn: Connection, rows: list[Any]) -> None:
        """Insert :meth:`decision_row` rows in the open transaction.

        On SQLite the rows go straight to the driver (the statement compiled once from the
        table): SQLAlchemy's per-row execution machinery costs more than the insert itself.
        """
        if not rows:
            return
        if self.sqlite_insert is None:
            conn.execute(sa.insert(self.decisions), rows)
            return
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.executemany(self.sqlite_insert, rows)

    def store_outcome(self, conn: Connection, payload: dict[str, Any]) -> StoredOutcome | None:
        """Store an outcome and set its decision's reward (``None``: unknown decision).

        A decision keeps its first outcome: a second one returns it with ``created=False``.
        """
        decision_id = payload["decision_id"]
        known = conn.execute(
            sa.select(self.decisions.c.decision_id).where(
                self.decisions.c.decision_id == decision_id
            )
        ).first()
        if known is None:
            return None
        o = self.outcomes.c
        existing = conn.execute(
            sa.select(o.outcome_id, o.reward, o.observed_at)
            .where(o.decision_id == decision_id)
            .limit(1)
        ).first()
        if existing is not None:
            return StoredOutcome(
                int(existing[0]), decision_id, float(existing[1]), str(existing[2]), False
            )
        inserted = conn.execute(sa.insert(self.outcomes).values(**payload))
        conn.execute(
            sa.update(self.decisions)
            .where(self.decisions.c.decision_id == decision_id)
            .values(reward=payload["reward"])
        )
        key = inserted.inserted_primary_key
        assert key is not None
        return StoredOutcome(
            int(key[0]), decision_id, float(payload["reward"]), payload["observed_at"], True
        )

    # -- reads (a database error raises AuditUnavailableError) -------------------------------
    def _read(self, query: Any) -> Any:
        """The first row of ``query`` (``None``: no row)."""
        try:
            with self.engine.connect() as conn:
                return conn.execute(query).first()
        except sa.exc.SQLAlchemyError as err:
            raise AuditUnavailableError(f"audit read failed: {_first_line(err)}") from None

    def stored_decision(self, decision_id: str) -> dict[str, Any] | None:
        """A decision's row (``None``: no such decision)."""
        row = self._read(
            sa.select(self.decisions).where(self.decisions.c.decision_id == decision_id)
        )
        return None if row is None else dict(row._mapping)

    def keyed_decision(self, service_id: str, key: str) -> KeyedDecision | None:
        """The decision stored under ``service_id``'s idempotency ``key`` (``None``: none)."""
        k = self.keys.c
        query = (
            sa.select(k.request_sha256, self.decisions)
            .join(self.decisions, self.decisions.c.decision_id == k.decision_id)
            .where(k.service_id == service_id, k.idempotency_key == key)
        )
        row = self._read(query)
        if row is None:
            return None
        values = dict(row._mapping)
        return KeyedDecision(str(values.pop("request_sha256")), values)

    def ingestion_marks(self, service_id: str) -> list[tuple[float, dict[str, Any]]]:
        """The decisions made on a service's ingested events, in step order: each one's
        time and what it had seen (its record's ``extra["ingested"]``).

        Raises:
            AuditUnavailableError: the database failed.
        """
        d = self.decisions.c
        query = sa.select(d.time_days, d.extra).where(d.service_id == service_id).order_by(d.step)
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(query).all()
        except sa.exc.SQLAlchemyError as err:
            raise AuditUnavailableError(f"audit read failed: {_first_line(err)}") from None
        return [
            (float(time_days), extra["ingested"])
            for time_days, extra in rows
            if isinstance(extra, dict) and "ingested" in extra
        ]

    def service_history(self, service_id: str, keep: int | None) -> ServiceHistory:
        """What rebuilds a service's decision state: its first and its ``keep`` latest
        portfolios (``None``: every one), and when it last executed escalate.

        Raises:
            AuditUnavailableError: the database failed.
        """
        try:
            return self._service_history(service_id, keep)
        except sa.exc.SQLAlchemyError as err:
            raise AuditUnavailableError(f"audit read failed: {_first_line(err)}") from None

    def _service_history(self, service_id: str, keep: int | None) -> ServiceHistory:
        d = self.decisions.c
        with self.engine.connect() as conn:
            first = conn.execute(
                sa.select(d.step, d.portfolio, d.executed_action)
                .where(d.service_id == service_id)
                .order_by(d.step)
                .limit(1)
            ).first()
            if first is None:
                return ServiceHistory(0, None, [])
            latest = conn.execute(
                sa.select(d.step, d.portfolio, d.executed_action)
                .where(d.service_id == service_id)
                .order_by(d.step.desc())
                .limit(keep)
            ).all()
            last_page = conn.execute(
                sa.select(d.time_days)
                .where(d.service_id == service_id, d.executed_action == _ESCALATE)
                .order_by(d.step.desc())
                .limit(1)
            ).first()
        rows = list(reversed(latest))
        if int(rows[0][0]) != int(first[0]):
            rows.insert(0, first)
        last_page_day = math.nan if last_page is None else float(last_page[0])
        return ServiceHistory(
            int(rows[-1][0]) + 1,
            int(rows[-1][2]),
            [row[1] for row in rows],
            last_page_day,
            tuple(int(row[2]) for row in rows),
        )
