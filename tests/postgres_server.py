"""The real PostgreSQL the tests use (127.0.0.1:5432, user postgres, trust auth; `.ci/run`
installs and starts it when it is absent). Each test session works in a database of its own,
created on first use and dropped at the end; each test starts with it empty."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid

import asyncpg
import pytest

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"


def postgres_reachable() -> bool:
    try:
        with socket.create_connection((HOST, PORT), timeout=1):
            return True
    except OSError:
        return False


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL is down; under CI (.ci/run starts it) fail instead."""
    if postgres_reachable():
        return
    where = f"{HOST}:{PORT}"
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL is not reachable at {where} (.ci/run starts it; CI needs it)")
    pytest.skip(f"PostgreSQL is not reachable at {where}; start it to run this test")


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(host=HOST, port=PORT, user=USER, database="postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def create_database() -> str:
    """A new, uniquely named database; its URL."""
    name = f"callguard_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    return f"postgresql://{USER}@{HOST}:{PORT}/{name}"


def drop_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def empty_database(url: str) -> None:
    """Drop every table, so the next test migrates from nothing."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
    finally:
        await conn.close()
