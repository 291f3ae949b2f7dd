"""The real Redis the tests use (127.0.0.1:6379; `.ci/run` starts it when it is down)."""

import os
import socket

import pytest

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_reachable() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1):
            return True
    except OSError:
        return False


def require_redis() -> None:
    """Skip the calling test when Redis is down; under CI (where .ci/run starts it) fail instead."""
    if redis_reachable():
        return
    if os.environ.get("CI"):
        pytest.fail("Redis is not reachable at 127.0.0.1:6379 (.ci/run starts it; CI needs it)")
    pytest.skip("Redis is not reachable at 127.0.0.1:6379; start redis-server to run this test")
