"""Shared test settings. Each test package keeps its own fixtures in its own conftest.py."""

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", deadline=None, max_examples=200, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("default", deadline=None, max_examples=100)
settings.load_profile("ci" if __import__("os").environ.get("CI") else "default")
