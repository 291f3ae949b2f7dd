"""The company status field's list items, read from the portal and kept for a while.

The status is an enumeration user field (``CALLGUARD_STATUS_FIELD``): a company holds a list item
ID, and the item's ``XML_ID`` is the status code (reference §4.2). Lookups (which read the list
inside their batch) and the status guard (which reads it on its own) share one
:class:`StatusField` per portal, so the list is cached once, with one TTL. A company holding an
item the cached list does not know (someone added one by hand) makes its reader refresh it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from gateway.crm.client import BitrixClient, BitrixError
from gateway.crm.forms import encode_form

LIST_METHOD = "crm.company.userfield.list"


class StatusFieldMissing(BitrixError):
    """The portal has no status field: run ``callguard setup-portal``."""


class StatusField:
    def __init__(self, name: str, ttl: float = 300.0) -> None:
        self.name = name
        self.ttl = ttl
        self._codes: dict[str, str] | None = None  # list item ID -> XML_ID (the status code)
        self._found = False
        self._at = 0.0

    def codes(self) -> dict[str, str] | None:
        """The cached items, or None when they are unknown or older than the TTL."""
        if self._codes is not None and time.monotonic() - self._at < self.ttl:
            return self._codes
        return None

    @property
    def params(self) -> dict[str, Any]:
        return {"filter": {"FIELD_NAME": self.name}}

    def command(self) -> str:
        """The batch sub-request that reads the list (answer: pass it to :meth:`remember`)."""
        return f"{LIST_METHOD}?" + encode_form(self.params)

    def remember(self, rows: Any) -> dict[str, str]:
        """Keep the items from a ``crm.company.userfield.list`` answer; a missing field is an
        empty list (lookups then see companies without a status)."""
        field = next(
            (
                r
                for r in (rows if isinstance(rows, list) else [])
                if isinstance(r, dict) and r.get("FIELD_NAME") == self.name
            ),
            None,
        )
        self._found = field is not None
        items = field.get("LIST") or [] if field is not None else []
        self._codes = {str(i["ID"]): str(i.get("XML_ID") or "") for i in items}
        self._at = time.monotonic()
        return self._codes

    async def load(self, client: BitrixClient, deadline: float) -> dict[str, str]:
        """Read the list now; :class:`StatusFieldMissing` if the portal has no such field."""
        # Only the status guard and setup-portal read it on its own: background work.
        answer = await client.call(LIST_METHOD, self.params, deadline=deadline, background=True)
        codes = self.remember(answer.result)
        if not self._found:
            raise StatusFieldMissing(
                LIST_METHOD, "", f"no company field {self.name}: run callguard setup-portal"
            )
        return codes


@dataclass(frozen=True, slots=True)
class RestAccess:
    """What a REST directory shares with the status guard: its client and its status field."""

    client: BitrixClient
    status_field: StatusField
