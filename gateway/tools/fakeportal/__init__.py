"""A Bitrix24 REST + outgoing-webhook emulator over a data file: the test double, demo and load-test
backend (design.md §3.3). ``FakePortal`` is the entry point; see server.py for its API."""

from gateway.crm.forms import encode_form, parse_query
from gateway.tools.fakeportal.events import Delivery
from gateway.tools.fakeportal.faults import Fault
from gateway.tools.fakeportal.methods import Notification
from gateway.tools.fakeportal.server import DEFAULT_CODE, FakePortal
from gateway.tools.fakeportal.store import RestError, normalize_phone

__all__ = [
    "DEFAULT_CODE",
    "Delivery",
    "FakePortal",
    "Fault",
    "Notification",
    "RestError",
    "encode_form",
    "normalize_phone",
    "parse_query",
]
