"""The fake portal's own tests use the CRM tests' fixtures: the demo data behind a fake portal."""

from tests.crm.conftest import demo_data, fake_portal  # noqa: F401
