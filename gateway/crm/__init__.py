"""Where CRM data comes from: one protocol, several sources.

A directory answers "what matches this phone key" with :class:`rules.Findings`. The rules never
know whether the data came from the embedded data file or from a Bitrix24 portal.
"""

from __future__ import annotations

from typing import Protocol

from rules.model import Findings


class Directory(Protocol):
    async def lookup(self, phone: str) -> Findings:
        """Everything that matches ``phone`` (an E.164 key from ``rules.normalize``)."""
        ...

    def health(self) -> dict[str, object]:
        """``{"ok": bool, "source": str, "reason": str | None, ...}`` for ``/healthz``."""
        ...

    async def close(self) -> None: ...


class DirectoryError(Exception):
    """A directory could not answer (the CRM failed, a file is malformed, ...)."""
