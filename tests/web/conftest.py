"""The HTTP tests use the live tests' fixtures: settings and an in-process client."""

from tests.live.conftest import client, settings  # noqa: F401
