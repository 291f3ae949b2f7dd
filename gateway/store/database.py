"""One database per gateway process: the engine made from ``CALLGUARD_DATABASE_URL``, migrated
when opened, every transaction timed, counted and turned into one exception type.

Errors:

- :class:`DatabaseUnavailable` from :meth:`Database.open`: the database cannot be created,
  reached or migrated. One line naming ``CALLGUARD_DATABASE_URL`` (password masked) and what to
  do; ``callguard serve`` prints it and exits 2.
- :class:`DatabaseError` from a transaction while running: one line, no SQL, no parameters.
  Callers on the live path log it as a warning and carry on without the database.

Every wait has a bound (``CALLGUARD_DATABASE_TIMEOUT``): connecting, a statement (PostgreSQL),
the SQLite busy lock and a free connection in the pool.

The ledger writer (:mod:`gateway.store.ledger_sink`) writes on a connection of its own, in a
thread of its own, to the same database: :attr:`Database.sqlite_target` or
:attr:`Database.postgres_dsn`, timed, counted and reported like a transaction (:meth:`timed`).
An in-memory database is therefore SQLite's ``memdb``, shared by name within the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from sqlalchemy import Connection, event, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import StaticPool

from gateway.store import migrations
from gateway.store.url import VARIABLE, is_memory, is_sqlite, mask, sqlite_file

DB_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
FAILURES = (SQLAlchemyError, OSError, TimeoutError, migrations.SchemaTooNew)


class DatabaseError(Exception):
    """A database operation failed; ``str(err)`` is one line without SQL or parameters."""


class DatabaseUnavailable(DatabaseError):
    """The database could not be opened at start; the message names CALLGUARD_DATABASE_URL."""


class DatabaseMetrics:
    def __init__(self, registry: CollectorRegistry | None) -> None:
        registry = registry if registry is not None else CollectorRegistry()
        self.errors = Counter(
            "callguard_database_errors",
            "Database operations that failed, by operation",
            ["operation"],
            registry=registry,
        )
        self.seconds = Histogram(
            "callguard_database_seconds",
            "Database transaction time, by operation",
            ["operation"],
            buckets=DB_BUCKETS,
            registry=registry,
        )


class Database:
    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        pool_size: int = 5,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.url = url
        self.shown = mask(url)
        self.timeout = timeout
        self.pool_size = pool_size
        self.metrics = DatabaseMetrics(registry)
        self._engine: AsyncEngine | None = None
        self._failure: str | None = None  # the last transaction's error, until one succeeds
        # An in-memory database is one shared connection: its transactions take turns (two
        # requests' would otherwise meet inside one connection).
        self._turns = asyncio.Lock() if is_memory(url) else None
        # Where another connection finds this database: (name, is a URI) for SQLite. In memory:
        # SQLite's memdb, which every connection of this process that names it shares, with the
        # usual locks (a plain ":memory:" would be a new empty database per connection).
        self.sqlite_target: tuple[str, bool] | None = None
        self.postgres_dsn: str | None = None
        file = sqlite_file(url)
        self._memdb = f"file:/callguard-{uuid.uuid4().hex}"
        if is_memory(url):
            self.sqlite_target = (f"{self._memdb}?vfs=memdb", True)
        elif file is not None:
            self.sqlite_target = (str(file), False)
        else:
            self.postgres_dsn = (
                make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            )

    @property
    def dialect(self) -> str:
        return "sqlite" if is_sqlite(self.url) else "postgresql"

    async def open(self) -> list[int]:
        """Connect, create the SQLite file if need be, apply migrations; the versions applied."""
        if self._engine is not None:
            return []
        file = sqlite_file(self.url)
        if file is not None:
            try:
                file.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise DatabaseUnavailable(
                    f"{VARIABLE}: cannot create the directory {file.parent} for the database "
                    f"file ({err.strerror or err}): make it writable for this user, or set "
                    "CALLGUARD_STATE_DIR to a writable directory or CALLGUARD_DATABASE_URL to "
                    "another database"
                ) from None
            try:
                await asyncio.to_thread(_wal, self.sqlite_target, self.timeout)
            except sqlite3.Error as err:
                raise DatabaseUnavailable(
                    f"{VARIABLE}: cannot open the database {self.shown}: {describe(err)}"
                    f"{_advice(self.url)}"
                ) from None
        self._engine = self._create_engine()
        try:
            async with self.transaction("migrate", write=True) as conn:
                return await conn.run_sync(migrations.migrate)
        except DatabaseError as err:
            await self.close()
            reason = describe(err.__cause__) if err.__cause__ is not None else str(err)
            raise DatabaseUnavailable(
                f"{VARIABLE}: cannot open the database {self.shown}: {reason}{_advice(self.url)}"
            ) from None

    def health(self) -> dict[str, object]:
        """For ``/healthz``: whether the last transaction worked, and why not."""
        return {
            "ok": self._engine is not None and self._failure is None,
            "url": self.shown,
            "reason": self._failure if self._engine is not None else "not open",
        }

    async def close(self) -> None:
        engine, self._engine = self._engine, None
        if engine is not None:
            await engine.dispose()

    @asynccontextmanager
    async def transaction(
        self, operation: str, *, write: bool = False
    ) -> AsyncIterator[AsyncConnection]:
        """One transaction, committed when the block ends; ``write`` takes SQLite's write lock
        at once, so a read-then-write never fails half-way on another writer."""
        engine = self.require_open()
        turn = self._turns if self._turns is not None else contextlib.nullcontext()
        with self.timed(operation):
            async with turn, engine.connect() as conn:
                if write:
                    await conn.execution_options(callguard_write=True)
                async with conn.begin():
                    yield conn

    def require_open(self) -> AsyncEngine:
        """The engine; :class:`DatabaseError` when closed: a closed database is not written
        to, by a transaction or by the ledger writer's own connection."""
        if self._engine is None:
            raise DatabaseError(f"the database {self.shown} is not open")
        return self._engine

    @contextmanager
    def timed(
        self, operation: str, failures: tuple[type[BaseException], ...] = FAILURES
    ) -> Iterator[None]:
        """Time and count one operation; a failure becomes :class:`DatabaseError` and what
        ``/healthz`` says until one succeeds. Any thread may use it (the ledger writer does)."""
        started = time.perf_counter()
        try:
            yield
            self._failure = None
        except failures as err:
            self.metrics.errors.labels(operation).inc()
            self._failure = f"database {operation} failed: {describe(err)}"
            raise DatabaseError(self._failure) from err
        finally:
            self.metrics.seconds.labels(operation).observe(time.perf_counter() - started)

    def _create_engine(self) -> AsyncEngine:
        url = make_url(self.url)
        options: dict[str, Any] = {}
        if self.sqlite_target is not None:
            url = url.set(drivername="sqlite+aiosqlite")
            # The busy timeout: how long a write waits for another connection's write lock.
            options["connect_args"] = {"timeout": self.timeout}
            if is_memory(self.url):
                url = url.set(database=self._memdb, query={"uri": "true", "vfs": "memdb"})
                # One connection held by the engine: the memdb lives while one is open.
                options["poolclass"] = StaticPool
            else:
                options.update(pool_size=self.pool_size, max_overflow=0, pool_timeout=self.timeout)
        else:
            url = url.set(drivername="postgresql+asyncpg")
            options.update(
                connect_args={"timeout": self.timeout, "command_timeout": self.timeout},
                pool_size=self.pool_size,
                max_overflow=0,
                pool_timeout=self.timeout,
                # A server restarted under a pooled connection costs one ping, not one error.
                pool_pre_ping=True,
            )
        engine = create_async_engine(url, **options)
        if is_sqlite(self.url):
            _sqlite_transactions(engine)
        return engine


def _sqlite_transactions(engine: AsyncEngine) -> None:
    """Let SQLite run real transactions: Python's sqlite3 module would start them itself only
    before INSERT/UPDATE/DELETE, leaving DDL (migrations) outside of them."""

    @event.listens_for(engine.sync_engine, "connect")
    def connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # the file is in WAL already (open: _wal)

    @event.listens_for(engine.sync_engine, "begin")
    def begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("callguard_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _wal(target: tuple[str, bool] | None, busy_timeout: float) -> None:
    """Put an SQLite file in WAL mode (it stays so): readers never wait for the writer (the
    ledger's report reads while calls write). Switching a new file while other processes open
    it too fails at once with "database is locked", SQLite calling no busy handler there (1 start
    in ~10 of three together: tests/store/test_database.py); retried as the busy timeout would
    wait. On a thread of its own: it may sleep."""
    assert target is not None
    name, uri = target
    deadline = time.monotonic() + busy_timeout
    conn = sqlite3.connect(name, uri=uri, timeout=busy_timeout, isolation_level=None)
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.01)
    finally:
        conn.close()


def describe(err: BaseException) -> str:
    """The driver's own words, first line only: no SQL, no parameters, no URL."""
    if isinstance(err, DBAPIError) and err.orig is not None:
        err = err.orig
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _advice(url: str) -> str:
    if is_sqlite(url):
        return "; check that the file is an SQLite database this user may write"
    return "; check that the server runs, that the database exists and the user may connect"
