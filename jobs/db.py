"""The job database: SQLAlchemy 2 models, SQLite (WAL) under $SPOTRAIN_HOME by default, any
SQLAlchemy URL (``SPOTRAIN_DB``, e.g. PostgreSQL) for teams. Versioned migrations."""

from __future__ import annotations


from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from spotrain.errors import SpotrainError
from spotrain.pricing.offer import Offer

from .states import Request

SCHEMA_VERSION = 2


class Base(DeclarativeBase):
    pass


class OfferJSON(TypeDecorator):
    """An ``Offer`` stored as its JSON (the only place an offer is a dict)."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.to_json()

    def process_result_value(self, value, dialect):
        return None if value is None else Offer.from_json(value)


class RequestType(TypeDecorator):
    """A ``states.Request`` stored as its string value."""

    impl = String(32)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else Request(value).value

    def process_result_value(self, value, dialect):
        return None if value is None else Request(value)


class OfferListJSON(TypeDecorator):
    """A list of ``Offer`` stored as JSON."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else [o.to_json() for o in value]

    def process_result_value(self, value, dialect):
        return None if value is None else [Offer.from_json(o) for o in value]


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), index=True)
    backend: Mapped[str] = mapped_column(String(32))
    recipe_yaml: Mapped[str] = mapped_column(Text)  # resolved recipe
    recipe_dir: Mapped[str] = mapped_column(Text)  # where relative paths resolve
    offers: Mapped[list[Offer]] = mapped_column(OfferListJSON)  # the planner's ranked offers at launch
    options: Mapped[dict] = mapped_column(JSON)  # backend options (preemption injection, grace, ...)
    workdir: Mapped[str] = mapped_column(Text)
    max_cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    deadline: Mapped[float | None] = mapped_column(Float, nullable=True)  # Unix time
    created: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float)
    ended: Mapped[float | None] = mapped_column(Float, nullable=True)
    message: Mapped[str] = mapped_column(Text, default="")
    requested: Mapped[Request | None] = mapped_column(
        RequestType, nullable=True
    )  # what the job was asked to do (states.Request)
    controller_pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    controller_host: Mapped[str | None] = mapped_column(String(255), nullable=True)
    heartbeat: Mapped[float | None] = mapped_column(Float, nullable=True)


class Attempt(Base):
    __tablename__ = "attempts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    backend: Mapped[str] = mapped_column(String(32))
    offer: Mapped[Offer] = mapped_column(OfferJSON)
    cloud: Mapped[str] = mapped_column(String(32))
    region: Mapped[str] = mapped_column(String(64))
    instance: Mapped[str] = mapped_column(String(64))
    spot: Mapped[bool] = mapped_column(Integer)
    price: Mapped[float] = mapped_column(Float)  # $/h for all nodes
    on_demand_price: Mapped[float] = mapped_column(Float)
    emulated: Mapped[bool] = mapped_column(Integer, default=0)
    handle: Mapped[dict] = mapped_column(JSON, default=dict)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float | None] = mapped_column(Float, nullable=True)
    billed_until: Mapped[float] = mapped_column(Float)
    end_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cost: Mapped[float] = mapped_column(Float, default=0.0)  # = Σ ledger entries of this attempt
    first_step: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_step: Mapped[int | None] = mapped_column(Integer, nullable=True)


class LedgerEntry(Base):
    __tablename__ = "ledger"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    attempt_id: Mapped[int] = mapped_column(ForeignKey("attempts.id"), index=True)
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    price: Mapped[float] = mapped_column(Float)  # $/h
    amount: Mapped[float] = mapped_column(Float)  # price × (end − start) / 3600


class Event(Base):
    __tablename__ = "events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id"), index=True)
    time: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class Schedule(Base):
    """A recipe retrained on a cron or interval trigger, under budgets per run, per month and in total."""

    __tablename__ = "schedules"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    recipe_path: Mapped[str] = mapped_column(
        Text
    )  # absolute; read again at every run (edit it to change the next runs)
    overrides: Mapped[list] = mapped_column(JSON)
    backend: Mapped[str] = mapped_column(String(32))
    trigger: Mapped[dict] = mapped_column(JSON)  # {"cron": "0 3 * * 1"} or {"every": seconds}
    timezone: Mapped[str] = mapped_column(String(64))  # of the cron fields and of the budget month
    max_cost_per_run: Mapped[float | None] = mapped_column(Float, nullable=True)
    monthly_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    total_budget: Mapped[float | None] = mapped_column(Float, nullable=True)
    allow_overlap: Mapped[bool] = mapped_column(Integer, default=0)
    enabled: Mapped[bool] = mapped_column(Integer, default=1)
    created: Mapped[float] = mapped_column(Float)


class ScheduleRun(Base):
    """Every time a schedule fired: the job it launched with its cap, or why it launched none."""

    __tablename__ = "schedule_runs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id"), index=True)
    time: Mapped[float] = mapped_column(Float)
    outcome: Mapped[str] = mapped_column(String(16))  # launched | skipped | failed
    job_id: Mapped[int | None] = mapped_column(ForeignKey("jobs.id"), nullable=True)
    cap: Mapped[float | None] = mapped_column(Float, nullable=True)  # the budget.max_cost the job got
    message: Mapped[str] = mapped_column(Text, default="")


class SchemaVersion(Base):
    __tablename__ = "schema_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True)


def _v1(conn) -> None:
    Base.metadata.create_all(
        conn, tables=[t.__table__ for t in (Job, Attempt, LedgerEntry, Event, SchemaVersion)]
    )


def _v2(conn) -> None:  # schedules
    Base.metadata.create_all(conn, tables=[Schedule.__table__, ScheduleRun.__table__])


MIGRATIONS = [(1, _v1), (2, _v2)]  # (version it brings the database to, function of a connection)


def default_url() -> str:
    from spotrain.paths import db_url

    return db_url()


def connect(url: str | None = None) -> Engine:
    url = url or default_url()
    engine = create_engine(url, future=True, connect_args={"timeout": 60} if url.startswith("sqlite") else {})
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi, _):
            dbapi.isolation_level = None  # we issue BEGIN ourselves (below)
            cur = dbapi.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn):  # take the write lock up front: no deadlocked upgrades between writers
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    migrate(engine)
    return engine


def current_version(conn) -> int:
    if not inspect(conn).has_table("schema_version"):
        return 0
    return conn.execute(select(SchemaVersion.version)).scalar() or 0


def migrate(engine: Engine) -> int:
    with engine.begin() as conn:
        v = current_version(conn)
        if v > SCHEMA_VERSION:
            raise SpotrainError(
                f"the job database is at schema version {v}, newer than this spotrain ({SCHEMA_VERSION}) — "
                "upgrade spotrain"
            )
        for target, fn in MIGRATIONS:
            if target > v:
                fn(conn)
                conn.execute(text("DELETE FROM schema_version"))
                conn.execute(SchemaVersion.__table__.insert().values(version=target))
                v = target
    return v
