"""The ledger's write side, for a thread of its own (:mod:`gateway.ledger.writer`): a connection
that thread alone uses, and plain ``executemany`` of a few fixed statements, so that no part of a
write runs on the event loop and little Python runs at all (SQLAlchemy's compiling and binding
cost the loop ~45 µs a call). A write answers which marks (ends, latencies) found no row of
their call, for the writer to try them again.

- SQLite: the standard library's ``sqlite3``, whose calls let go of the GIL while SQLite works;
  written in chunks with a pause between them now and then, so the event loop gets the GIL when
  it needs it (:data:`CHUNK`, :data:`HOLD`).
- PostgreSQL: asyncpg, the gateway's driver already, on an event loop private to the thread
  (a batch is one round trip, during which the GIL is free).
  A synchronous driver (psycopg) would be a second PostgreSQL driver to install and keep, and
  fast only with libpq or its binary wheel; asyncpg encodes a batch in C and pipelines it.

Rows are tuples of :data:`COLUMNS`, times UTC datetimes. A connection broken under the sink (the
server restarted) costs one retry on a new one, not the batch. Failures come out as
:class:`gateway.store.database.DatabaseError`: one line, no SQL, no parameters; timed and counted
like any transaction (``callguard_database_seconds``, ``callguard_database_errors``).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg

from gateway.store.database import Database
from gateway.store.tables import call_ledger

# The order of a row's values: the table's columns but "id" (the database's), that is time,
# call_id, caller_id, direction, source, colour, rule, entity_type, entity_id, entity_title,
# owner_id, owner_name, phone_last4, ended_at, latency_ms.
COLUMNS = tuple(c.name for c in call_ledger.columns if not c.primary_key)
# What a later decision of a recorded call changes: the row says what the popup showed last, at
# the time the call began.
DECISION = ("colour", "rule", "entity_type", "entity_id", "entity_title", "owner_id", "owner_name")
# Rows per DELETE in retention: short transactions, so writers never wait long.
PURGE_BATCH = 1000
# A thread that lets go of the GIL only for a moment (one SQLite step, a few microseconds) takes
# it back before the event loop's thread, woken by that, runs: the loop then waits for the whole
# batch, or for the interpreter's switch interval (5 ms). So the thread works in chunks of CHUNK
# statements (or rows to build) and, between two, sleeps PAUSE once it has worked HOLD since it
# last let go: long enough for a waiting loop to take the GIL. bench/ledger_gil.py, at 50 times
# the usual write rate, median p99 of the loop's wake-up delay: SQLite file 2.1 ms with one
# executemany a batch, 0.48 in chunks, 0.42 with no writer (in memory 0.67, 0.38 and 0.13).
# A pause after every chunk, though, was a context switch per 16 items: 0.27 a call at 500
# calls/s (the gateway's whole loop thread makes ~2), each dear on a virtual machine.
# HOLD 0.5 ms still showed in the websocket path's p99 (bench/ledger_cost.py, 2000 tabs, 300
# calls/s, ledger on/off over 5 rounds: 1.19x); 0.2 ms gave 1.02x and 1.03x in two runs of 5
# rounds, for 8 us more of the writer's CPU a call (+39 against +31 us).
CHUNK = 16
PAUSE = 0.0002
HOLD = 0.0002
_held = threading.local()  # per writer thread: when it last let go of the GIL
# The writer's own SQLite connection. Each call's row lands on a leaf page of its own in the
# (caller_id, call_id) index (the keys come in no order), so a batch dirties about a page a row,
# and with SQLite's defaults most of a write's CPU was the kernel's: reading pages back (a 2 MB
# cache), writing them to the WAL, syncing it at every commit and copying them to the file every
# 1000 pages. bench/ledger_rows.py (the sink's writes, these settings against the defaults, in
# turns), rows 150,000-600,000: CPU per row 0.71-0.76x, wall 0.67-0.75x. Each setting's share,
# added one at a time in a first ad hoc run of the same statement (rows 225,000-300,000, CPU
# (wall) per row): defaults 55 us (107), synchronous NORMAL with checkpoints every 4000 pages
# 42 (61), a 32 MB cache as well 38 (58), reads through mmap as well 35 (46).
# - synchronous NORMAL: in WAL mode a commit survives the process crashing and the file stays
#   whole; only the last commits before a power cut may roll back. The writer holds up to
#   GATHER (0.25 s) of calls in memory anyway, so FULL made no call safer that mattered.
# - The cache and the map are ceilings, filled as pages are used; the map is of the file only.
SQLITE_PRAGMAS = (
    "PRAGMA synchronous=NORMAL",
    "PRAGMA wal_autocheckpoint=4000",  # pages: the WAL grows to ~16 MB between checkpoints
    "PRAGMA cache_size=-32768",  # KiB
    "PRAGMA mmap_size=268435456",  # bytes
)


def _null(value: None) -> None:
    return value


# The standard library's sqlite3 binds None only after trying to adapt it: with no adapter for
# NoneType it looks one up, asks the value to __conform__, and formats a "can't adapt" error that
# it then discards, for every NULL it binds (~0.4 us each here; a ledger row has up to 8, and the
# writer binds with the GIL held). An adapter that returns its None skips all that:
# bench/call_instructions.py, gateway+ledger, the writer thread's instructions per call went from
# 72,779 and 72,312 to 66,977 and 67,584 (the loop thread's, which vary with the GIL's hand-overs,
# rose 1-2.5%; both together fell 0.2-1.0%). It is the identity, so it changes nothing for any
# sqlite3 connection of the process (the registry is the module's: SQLAlchemy's take it too).
sqlite3.register_adapter(type(None), _null)

Row = tuple[Any, ...]
Ended = tuple[Any, str, str]  # (ended_at, caller_id, call_id)
Applied = tuple[float, str, str]  # (latency_ms, caller_id, call_id)
Unmatched = tuple[list[Ended], list[Applied]]

FAILURES = (sqlite3.Error, asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError)
T = TypeVar("T")
M = TypeVar("M", bound=tuple[Any, ...])  # a mark: Ended or Applied


class LedgerSink(Protocol):
    def stamp(self, moment: datetime) -> Any:
        """``moment`` as this database's driver takes a time."""
        ...

    def stamp_at(self, seconds: float) -> Any:
        """``stamp`` of a ``time.time()``: the writer's stamps, two a call."""
        ...

    def write(
        self, rows: Sequence[Row], ended: Sequence[Ended] = (), applied: Sequence[Applied] = ()
    ) -> Unmatched:
        """One transaction: ``rows`` (one per caller and call), then the marks; the marks whose
        call has no row (yet: another process may not have written it)."""
        ...

    def purge(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        """Delete calls older than ``before``, ``batch`` per transaction; how many."""
        ...

    def close(self) -> None: ...


def resume() -> None:
    """The thread starts work after a wait, in which it held no GIL."""
    _held.since = time.perf_counter()


def pause() -> None:
    """Let go of the GIL long enough for the event loop's thread to take it, if it waits, once
    this thread has worked :data:`HOLD` since it last did."""
    if time.perf_counter() - getattr(_held, "since", 0.0) >= HOLD:
        time.sleep(PAUSE)
        resume()


def open_sink(database: Database) -> LedgerSink:
    """A sink on ``database``; it connects on first use, in the thread that uses it."""
    if database.sqlite_target is not None:
        return SqliteSink(database)
    return PostgresSink(database)


def _q(name: str) -> str:
    return f'"{name}"'


class _Statements:
    def __init__(self, mark: Callable[[int], str]) -> None:
        table = _q(call_ledger.name)
        names = ", ".join(_q(c) for c in COLUMNS)
        values = ", ".join(mark(i) for i in range(1, len(COLUMNS) + 1))
        changes = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in DECISION)
        # A row may come with its marks (the writer folds a mark into a row of the same batch):
        # an end replaces none, the first applied latency stays.
        changes += (
            f', "ended_at" = COALESCE(excluded."ended_at", {table}."ended_at")'
            f', "latency_ms" = COALESCE({table}."latency_ms", excluded."latency_ms")'
        )
        key = f'"caller_id" = {mark(2)} AND "call_id" = {mark(3)}'
        self.upsert = (
            f"INSERT INTO {table} ({names}) VALUES ({values}) "
            f'ON CONFLICT ("caller_id", "call_id") DO UPDATE SET {changes}'
        )
        self.ended = f'UPDATE {table} SET "ended_at" = {mark(1)} WHERE {key}'
        # The first applied paint is the ring -> applied latency; later ones repaint. Matching
        # every row of the call (not only those without a latency) tells a mark whose row is
        # not there from one that came second.
        self.applied = (
            f'UPDATE {table} SET "latency_ms" = COALESCE("latency_ms", {mark(1)}) WHERE {key}'
        )
        # PostgreSQL's: which of the marked calls have a row.
        self.existing = (
            f'SELECT "caller_id", "call_id" FROM {table} '
            f'WHERE ("caller_id", "call_id") IN (SELECT * FROM unnest({mark(1)}::text[], '
            f"{mark(2)}::text[]))"
        )
        self.purge = (
            f'DELETE FROM {table} WHERE "id" IN (SELECT "id" FROM {table} '
            f'WHERE "time" < {mark(1)} ORDER BY "id" LIMIT {mark(2)})'
        )


class SqliteSink:
    statements = _Statements(lambda i: "?")
    pragmas = SQLITE_PRAGMAS  # the writer connection's settings

    def __init__(self, database: Database) -> None:
        assert database.sqlite_target is not None
        self.database = database
        self._conn: sqlite3.Connection | None = None
        self._second = -1  # the whole second stamp_at formatted last, and its text
        self._second_text = ""

    def stamp(self, moment: datetime) -> str:
        # As SQLAlchemy stores a DateTime in SQLite, so that the report reads these rows back.
        return moment.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def stamp_at(self, seconds: float) -> str:
        """As ``stamp(datetime.fromtimestamp(seconds, UTC))``, in 1.9 us instead of 6: the date
        and time of day are formatted once a second (calls in one batch share their second),
        the microseconds rounded as datetime rounds them (half to even)."""
        fraction, whole = math.modf(seconds)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        if whole != self._second:
            self._second = int(whole)
            self._second_text = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole))
        return f"{self._second_text}.{str(micro).zfill(6)}"  # half the time of :06d

    def write(
        self, rows: Sequence[Row], ended: Sequence[Ended] = (), applied: Sequence[Applied] = ()
    ) -> Unmatched:
        self.database.require_open()
        with self.database.timed("ledger_write", FAILURES):
            conn = self._connection()
            try:
                conn.execute("BEGIN IMMEDIATE")
                self._many(conn, self.statements.upsert, rows)
                unmatched = (
                    self._marks(conn, self.statements.ended, ended),
                    self._marks(conn, self.statements.applied, applied),
                )
                conn.execute("COMMIT")
            except BaseException:
                self._rollback(conn)
                raise
        return unmatched

    def purge(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        self.database.require_open()
        deleted = 0
        while True:
            with self.database.timed("ledger_purge", FAILURES):
                conn = self._connection()
                try:
                    conn.execute("BEGIN IMMEDIATE")
                    done = conn.execute(self.statements.purge, (self.stamp(before), batch))
                    conn.execute("COMMIT")
                except BaseException:
                    self._rollback(conn)
                    raise
            deleted += done.rowcount
            if done.rowcount < batch:
                return deleted

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            assert self.database.sqlite_target is not None
            name, uri = self.database.sqlite_target
            # isolation_level None: the transactions are the ones written here, nothing implicit.
            conn = sqlite3.connect(
                name, uri=uri, timeout=self.database.timeout, isolation_level=None
            )
            for pragma in self.pragmas:
                conn.execute(pragma)
            self._conn = conn
        return self._conn

    @staticmethod
    def _marks(conn: sqlite3.Connection, statement: str, marks: Sequence[M]) -> list[M]:
        """Apply ``marks`` one by one (few: most are folded into their rows); those that
        matched no row."""
        unmatched: list[M] = []
        for done, mark in enumerate(marks, 1):
            if not conn.execute(statement, mark).rowcount:
                unmatched.append(mark)
            if done % CHUNK == 0:
                pause()
        return unmatched

    @staticmethod
    def _many(conn: sqlite3.Connection, statement: str, values: Sequence[tuple[Any, ...]]) -> None:
        for start in range(0, len(values), CHUNK):
            if start:
                pause()
            conn.executemany(statement, values[start : start + CHUNK])

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # the failure being raised says more
                conn.execute("ROLLBACK")


class PostgresSink:
    statements = _Statements(lambda i: f"${i}")

    def __init__(self, database: Database) -> None:
        assert database.postgres_dsn is not None
        self.database = database
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: asyncpg.Connection | None = None

    def stamp(self, moment: datetime) -> datetime:
        return moment.astimezone(UTC)

    def stamp_at(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    def write(
        self, rows: Sequence[Row], ended: Sequence[Ended] = (), applied: Sequence[Applied] = ()
    ) -> Unmatched:
        async def run(conn: asyncpg.Connection) -> Unmatched:
            async with conn.transaction():
                if rows:
                    await conn.executemany(self.statements.upsert, rows)
                if not ended and not applied:
                    return [], []
                # Which marked calls have a row, in one round trip: executemany tells nothing.
                keys = {(m[1], m[2]) for m in (*ended, *applied)}
                found = await conn.fetch(
                    self.statements.existing, [k[0] for k in keys], [k[1] for k in keys]
                )
                there = {(r[0], r[1]) for r in found}
                for statement, marks in (
                    (self.statements.ended, ended),
                    (self.statements.applied, applied),
                ):
                    matched = [m for m in marks if (m[1], m[2]) in there]
                    if matched:
                        await conn.executemany(statement, matched)
                return (
                    [m for m in ended if (m[1], m[2]) not in there],
                    [m for m in applied if (m[1], m[2]) not in there],
                )

        self.database.require_open()
        with self.database.timed("ledger_write", FAILURES):
            return self._run(run)

    def purge(self, before: datetime, batch: int = PURGE_BATCH) -> int:
        async def run(conn: asyncpg.Connection) -> int:
            status = await conn.execute(self.statements.purge, self.stamp(before), batch)
            return int(status.split()[-1])  # "DELETE n"

        self.database.require_open()
        deleted = 0
        while True:
            with self.database.timed("ledger_purge", FAILURES):
                done = self._run(run)
            deleted += done
            if done < batch:
                return deleted

    def close(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        conn, self._conn = self._conn, None
        try:
            if conn is not None and not conn.is_closed():
                try:
                    loop.run_until_complete(conn.close(timeout=self.database.timeout))
                except FAILURES:
                    conn.terminate()  # the server is gone or slow: just drop the socket
        finally:
            loop.close()

    def _run(self, work: Callable[[asyncpg.Connection], Coroutine[Any, Any, T]]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
        return self._loop.run_until_complete(self._with_connection(work))

    async def _with_connection(
        self, work: Callable[[asyncpg.Connection], Coroutine[Any, Any, T]]
    ) -> T:
        fresh = self._conn is None or self._conn.is_closed()
        if fresh:
            self._conn = await self._connect()
        assert self._conn is not None
        try:
            return await work(self._conn)
        except FAILURES:
            if fresh or not self._conn.is_closed():
                raise
        # The connection broke under us (a restarted server): once more, on a new one.
        self._conn = await self._connect()
        return await work(self._conn)

    async def _connect(self) -> asyncpg.Connection:
        timeout = self.database.timeout
        return await asyncpg.connect(
            self.database.postgres_dsn, timeout=timeout, command_timeout=timeout
        )
