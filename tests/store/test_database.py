"""The database layer on a real SQLite file and on the real PostgreSQL server: migrations at
open, the approved-status repository, and errors that name CALLGUARD_DATABASE_URL."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncConnection

from gateway.store import migrations
from gateway.store.approved import ApprovedStatuses
from gateway.store.database import Database, DatabaseError, DatabaseUnavailable
from gateway.store.tables import metadata
from tests.timing import timeout

INSTALL_DOC = Path(__file__).resolve().parents[2] / "docs" / "install-box.md"


def _schema(conn: AsyncConnection) -> object:
    def read(sync: object) -> dict[str, set[tuple[str, bool]]]:
        found = inspect(sync)
        return {
            t: {(c["name"], bool(c["nullable"])) for c in found.get_columns(t)}
            for t in found.get_table_names()
        }

    return conn.run_sync(read)


async def test_open_migrates_to_the_tables_this_version_uses(database_url: str) -> None:
    db = Database(database_url)
    try:
        assert await db.open() == [step.version for step in migrations.STEPS]
        async with db.transaction("read") as conn:
            schema = await _schema(conn)  # type: ignore[misc]
            versions = (await conn.execute(text("SELECT version FROM schema_version"))).all()
        expected = {
            t.name: {(c.name, bool(c.nullable)) for c in t.columns} for t in metadata.sorted_tables
        }
        assert schema == expected
        assert [v for (v,) in versions] == [step.version for step in migrations.STEPS]
    finally:
        await db.close()
    again = Database(database_url)
    try:
        assert await again.open() == []  # nothing left to apply
    finally:
        await again.close()


async def test_processes_starting_together_migrate_once(database_url: str) -> None:
    # The busy timeout is how long each waits for the others' migration: generous, as a hang
    # guard (a loaded machine once kept SQLite's lock past the 5 s default).
    dbs = [Database(database_url, timeout=timeout(2)) for _ in range(3)]
    try:
        async with asyncio.timeout(timeout(2)):
            applied = await asyncio.gather(*(db.open() for db in dbs))
        assert sorted(map(len, applied)) == [0, 0, len(migrations.STEPS)]
    finally:
        for db in dbs:
            await db.close()


async def test_approved_statuses_round_trip(database_url: str) -> None:
    db = Database(database_url)
    await db.open()
    statuses = ApprovedStatuses(db)
    try:
        assert await statuses.get("10") is None
        await statuses.set("10", "IN_WORK")
        await statuses.set("10", "DECLINED")
        await statuses.set("11", "")
        assert await statuses.get("10") == "DECLINED"
        assert await statuses.get("11") == ""  # "no status" is a record, not a miss
        assert not await statuses.set_default("10", "PENDING")
        assert await statuses.set_defaults({"10": "PENDING", "12": "IN_WORK", "13": ""}) == 2
        assert await statuses.set_defaults({}) == 0
        assert [await statuses.get(c) for c in ("10", "12", "13")] == ["DECLINED", "IN_WORK", ""]
        await statuses.forget("10")
        await statuses.forget("10")  # forgetting twice is fine
        assert await statuses.get("10") is None
    finally:
        await db.close()
    # A "restart": what was recorded is still there.
    reopened = Database(database_url)
    await reopened.open()
    try:
        assert await ApprovedStatuses(reopened).get("12") == "IN_WORK"
    finally:
        await reopened.close()


async def test_the_sqlite_file_and_its_directories_are_created(tmp_path: Path) -> None:
    file = tmp_path / "a" / "b" / "callguard.sqlite3"
    db = Database(f"sqlite:///{file}")
    await db.open()
    await db.close()
    assert file.is_file()
    assert file.read_bytes().startswith(b"SQLite format 3\x00")


async def test_a_directory_that_cannot_be_made_names_the_variables(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("not a directory")
    db = Database(f"sqlite:///{tmp_path / 'plain-file' / 'callguard.sqlite3'}")
    with pytest.raises(DatabaseUnavailable) as caught:
        await db.open()
    message = str(caught.value)
    assert message.startswith("CALLGUARD_DATABASE_URL: cannot create the directory ")
    assert "CALLGUARD_STATE_DIR" in message
    assert "\n" not in message


async def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    file = tmp_path / "callguard.sqlite3"
    file.write_bytes(b"this is not an SQLite database, it is a text file " * 4)
    with pytest.raises(DatabaseUnavailable) as caught:
        await Database(f"sqlite:///{file}").open()
    assert str(caught.value) == (
        f"CALLGUARD_DATABASE_URL: cannot open the database sqlite:///{file}: file is not a "
        "database; check that the file is an SQLite database this user may write"
    )


async def test_an_unreachable_server_is_one_line_without_the_password() -> None:
    # Nothing listens on the discard port: connecting fails at once.
    db = Database("postgresql://callguard:s3cret-pw@127.0.0.1:9/callguard", timeout=timeout())
    with pytest.raises(DatabaseUnavailable) as caught:
        await db.open()
    message = str(caught.value)
    assert message.startswith(
        "CALLGUARD_DATABASE_URL: cannot open the database "
        "postgresql://callguard:***@127.0.0.1:9/callguard: "
    )
    assert "s3cret-pw" not in message
    assert "\n" not in message


async def test_a_database_newer_than_this_gateway_is_refused(database_url: str) -> None:
    db = Database(database_url)
    await db.open()
    try:
        async with db.transaction("test", write=True) as conn:
            await conn.execute(
                text(
                    "INSERT INTO schema_version (version, description, applied_at) "
                    "VALUES (999, 'from the future', CURRENT_TIMESTAMP)"
                )
            )
    finally:
        await db.close()
    with pytest.raises(DatabaseUnavailable, match="schema version 999, this Callguard knows up"):
        await Database(database_url).open()


async def test_failures_while_running_are_one_line_and_counted(sqlite_url: str) -> None:
    registry = CollectorRegistry()
    db = Database(sqlite_url, registry=registry)
    await db.open()
    try:
        async with db.transaction("test", write=True) as conn:
            await conn.execute(text("DROP TABLE approved_status"))
        with pytest.raises(DatabaseError) as caught:
            await ApprovedStatuses(db).get("10")
        assert str(caught.value) == "database approved_get failed: no such table: approved_status"
    finally:
        await db.close()
    exposition = generate_latest(registry).decode()
    assert 'callguard_database_errors_total{operation="approved_get"} 1.0' in exposition
    assert 'callguard_database_seconds_count{operation="migrate"} 1.0' in exposition
    with pytest.raises(DatabaseError, match="is not open"):
        await ApprovedStatuses(db).get("10")


async def test_the_documented_backup_copies_a_live_database(tmp_path: Path) -> None:
    """docs/install-box.md's Python backup, run while the gateway holds the file open in WAL
    mode with a change not yet checkpointed into the main file."""
    [code] = re.findall(r"python3 -c '([^']*\.backup\([^']*)'", INSTALL_DOC.read_text("utf-8"))
    live, copy = tmp_path / "callguard.sqlite3", tmp_path / "backup.sqlite3"
    db = Database(f"sqlite:///{live}")
    await db.open()
    try:
        await ApprovedStatuses(db).set("10", "DECLINED")
        assert (tmp_path / "callguard.sqlite3-wal").stat().st_size > 0
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", code, str(live), str(copy)
        )
        async with asyncio.timeout(timeout()):
            assert await proc.wait() == 0
    finally:
        await db.close()
    restored = Database(f"sqlite:///{copy}")
    await restored.open()
    try:
        assert await ApprovedStatuses(restored).get("10") == "DECLINED"
    finally:
        await restored.close()
