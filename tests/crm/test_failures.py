"""A failing portal ends the lookup within its deadline, with one clear log line and no secret."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator

import pytest

from gateway.crm.build import source_directory
from gateway.crm.cache import CachedDirectory
from gateway.crm.client import (
    BitrixClient,
    BitrixConfigError,
    BitrixError,
    BitrixMethodPaused,
    BitrixRateLimited,
    BitrixTimeout,
    BitrixTransportError,
    Limits,
)
from gateway.crm.dataset import Dataset
from gateway.crm.rest import BitrixDirectory
from gateway.tools.fakeportal import FakePortal
from tests.crm.conftest import portal_settings
from tests.timing import timeout

PHONE = "+74951234567"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("callguard") and r.levelno >= logging.WARNING
    ]


@pytest.fixture
async def directory(fake_portal: FakePortal) -> AsyncIterator[BitrixDirectory]:
    found = source_directory(portal_settings(fake_portal, lookup_deadline=0.5))
    assert isinstance(found, BitrixDirectory)
    yield found
    await found.close()


async def lookup_error(directory: BitrixDirectory, phone: str = PHONE) -> BitrixError:
    """A lookup as the gateway makes it: through a cache, which logs each failed one once."""
    with pytest.raises(BitrixError) as info:
        async with asyncio.timeout(timeout()):  # a hang guard, not a speed claim
            await CachedDirectory(directory).lookup(phone)
    return info.value


@pytest.mark.parametrize(
    ("method", "status", "error", "kind"),
    [
        ("batch", 503, "QUERY_LIMIT_EXCEEDED", BitrixRateLimited),
        ("batch", 429, "QUERY_LIMIT_EXCEEDED", BitrixRateLimited),
        ("batch", 500, "INTERNAL_SERVER_ERROR", BitrixError),
        ("batch", 503, "OVERLOAD_LIMIT", BitrixError),
        ("batch", 429, "OPERATION_TIME_LIMIT", BitrixMethodPaused),
    ],
)
async def test_an_error_answer_ends_the_lookup_with_one_log_line(
    directory: BitrixDirectory,
    fake_portal: FakePortal,
    caplog: pytest.LogCaptureFixture,
    method: str,
    status: int,
    error: str,
    kind: type[BitrixError],
) -> None:
    fake_portal.fail(method, status, error, "The portal says no", times=None)
    with caplog.at_level(logging.DEBUG):
        err = await lookup_error(directory)
    assert isinstance(err, kind)
    assert (err.status, err.error, err.description) == (status, error, "The portal says no")
    [line] = warnings(caplog)
    assert f"lookup of ****4567 failed, painting none: {method} (" in line
    assert PHONE not in line
    assert f"HTTP {status} {error}: The portal says no" in line


async def test_one_query_limit_answer_is_retried(
    directory: BitrixDirectory, fake_portal: FakePortal
) -> None:
    fake_portal.fail("batch", 503, "QUERY_LIMIT_EXCEEDED", times=1)
    assert (await directory.lookup(PHONE)).companies[0].id == "10"
    assert fake_portal.requests == {"batch": 3}


async def test_a_failed_sub_request_fails_the_lookup_rather_than_finding_less(
    directory: BitrixDirectory, fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    # Fewer findings would be cached as the number's colour: a failure is painted "none" instead.
    fake_portal.fail("crm.item.list", 400, "INVALID_ARG_VALUE", "The portal says no", times=1)
    with caplog.at_level(logging.DEBUG):
        err = await lookup_error(directory)
    assert (type(err), err.status, err.error) == (BitrixError, None, "INVALID_ARG_VALUE")
    [line] = warnings(caplog)
    assert "lookup of ****4567 failed, painting none: crm.item.list (" in line


async def test_operation_time_limit_pauses_the_method_until_reset(
    directory: BitrixDirectory, fake_portal: FakePortal
) -> None:
    # A sub-request's OPERATION_TIME_LIMIT pauses that method: a batch holding it is not sent.
    method = "crm.duplicate.findbycomm"
    fake_portal.fail(method, 429, "OPERATION_TIME_LIMIT", "Method is blocked", reset_in=60)
    assert isinstance(await lookup_error(directory), BitrixMethodPaused)
    fake_portal.reset_counters()
    err = await lookup_error(directory)
    assert isinstance(err, BitrixMethodPaused)
    assert fake_portal.total_requests == 0  # the batch was not sent
    paused = directory.health()["paused"]
    assert isinstance(paused, dict)
    assert 50 < paused[method] <= 60


async def test_a_hanging_portal_ends_the_lookup_at_its_deadline(
    directory: BitrixDirectory, fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    fake_portal.hang("batch")
    with caplog.at_level(logging.DEBUG):
        err = await lookup_error(directory)
    assert isinstance(err, BitrixTimeout)
    assert isinstance(err, TimeoutError)
    [line] = warnings(caplog)
    assert "batch" in line
    assert "TIMEOUT" in line


async def test_garbage_ends_the_lookup_with_a_transport_error(
    directory: BitrixDirectory, fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    fake_portal.garbage("batch")
    with caplog.at_level(logging.DEBUG):
        err = await lookup_error(directory)
    assert isinstance(err, BitrixTransportError)
    assert err.error == "BAD_RESPONSE"
    assert err.status == 200
    assert len(warnings(caplog)) == 1


async def test_a_wrong_webhook_code_is_a_configuration_error_in_health(
    fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    url = fake_portal.url + "rest/1/wrong0secret0code/"
    directory = source_directory(portal_settings(fake_portal).but(portal_url=url))
    assert isinstance(directory, BitrixDirectory)
    try:
        with caplog.at_level(logging.DEBUG):
            err = await lookup_error(directory)
            assert isinstance(err, BitrixConfigError)
            assert (err.status, err.error) == (401, "NO_AUTH_FOUND")
            health = directory.health()
            assert health["ok"] is False
            assert health["reason"] == "HTTP 401 NO_AUTH_FOUND: Wrong authorization data"
            fake_portal.reset_counters()
            await lookup_error(directory)  # fails fast: no retry loop against the portal
            assert fake_portal.total_requests == 0
        assert "wrong0secret0code" not in caplog.text + str(err) + str(health)
    finally:
        await directory.close()


async def test_a_missing_scope_is_a_configuration_error(demo_data: Dataset) -> None:
    async with FakePortal(demo_data, scopes=("user",)) as portal:
        directory = source_directory(portal_settings(portal))
        assert isinstance(directory, BitrixDirectory)
        try:
            err = await lookup_error(directory)
            assert isinstance(err, BitrixConfigError)
            assert err.error == "insufficient_scope"  # a sub-request error inside the batch
            assert directory.health()["ok"] is False
        finally:
            await directory.close()


async def test_the_client_side_bucket_fails_fast_instead_of_queueing(
    fake_portal: FakePortal,
) -> None:
    settings = portal_settings(fake_portal, rate_burst=1, rate_per_second=0.01)
    directory = source_directory(settings)
    assert isinstance(directory, BitrixDirectory)
    try:
        err = await lookup_error(directory)
        assert isinstance(err, BitrixRateLimited)
        assert err.description.startswith("client-side rate limit: next request in ")
        assert fake_portal.requests == {"batch": 1}
    finally:
        await directory.close()


async def test_concurrent_requests_reserve_their_place_in_the_bucket(
    fake_portal: FakePortal,
) -> None:
    # Burst 2 at 2/s: the 3rd request waits 0.5 s, the 4th would wait 1 s, past the deadline.
    # Requests that wait at the same time must each take their own turn, not all the next one.
    client = BitrixClient(fake_portal.webhook_url, Limits(rate_burst=2, rate_per_second=2.0))
    try:
        deadline = time.monotonic() + 0.8
        results = await asyncio.gather(
            *(client.call("profile", deadline=deadline) for _ in range(6)),
            return_exceptions=True,
        )
        limited = [r for r in results if isinstance(r, BitrixRateLimited)]
        assert len(limited) == 3, results
        assert fake_portal.requests == {"profile": 3}
    finally:
        await client.close()


async def test_the_webhook_code_never_reaches_the_logs(
    fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    refused = "http://127.0.0.1:9/rest/1/" + fake_portal.code + "/"
    dead = source_directory(portal_settings(fake_portal).but(portal_url=refused))
    live = source_directory(portal_settings(fake_portal, lookup_deadline=0.3))
    assert isinstance(dead, BitrixDirectory)
    assert isinstance(live, BitrixDirectory)
    errors: list[str] = []
    try:
        with caplog.at_level(logging.DEBUG):
            errors.append(str(await lookup_error(dead)))
            for arm in (
                lambda: fake_portal.fail("batch", 500, "ERROR_CORE", fake_portal.webhook_url),
                lambda: fake_portal.garbage("batch"),
                lambda: fake_portal.hang("batch"),
                lambda: fake_portal.fail("*", 401, "NO_AUTH_FOUND", "Wrong authorization data"),
            ):
                arm()
                errors.append(str(await lookup_error(live)))
        assert len(warnings(caplog)) == 5
        assert "TRANSPORT" in errors[0]
        assert fake_portal.code not in caplog.text + "".join(errors) + str(live.health())
        assert "/rest/1/***/" in caplog.text
    finally:
        await dead.close()
        await live.close()


async def test_a_flood_of_failed_lookups_is_one_log_line(
    directory: BitrixDirectory, fake_portal: FakePortal, caplog: pytest.LogCaptureFixture
) -> None:
    """A user's flood of new numbers past the portal's budget fails each lookup; the log gets
    one line for the burst, not one per number."""
    fake_portal.fail("batch", 500, "INTERNAL_SERVER_ERROR", "The portal says no", times=None)
    cache = CachedDirectory(directory)
    with caplog.at_level(logging.DEBUG):
        for n in range(20):
            with pytest.raises(BitrixError):
                async with asyncio.timeout(timeout()):
                    await cache.lookup(f"+7 916 555-{n:02d}-67")
    [line] = warnings(caplog)
    assert "failed, painting none" in line
    assert fake_portal.requests["batch"] >= 20  # each was tried: only the log is quiet
