"""The portal account a gateway serves: the first successful sign-in pins its ``member_id``.

A portal's address can move to another Bitrix24 account (a domain given up and taken again); its
``member_id`` cannot. Once pinned, a sign-in from any other ``member_id`` is refused (403) until an
administrator deletes the file. Kept in ``CALLGUARD_STATE_DIR/portal.json`` (written whole, then
renamed, so a crash leaves the old file or the new one); with no state directory (settings built
in code: tests, the demo) it lives as long as the process.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from gateway.run.config import ConfigError

FILE_NAME = "portal.json"


class MemberPin:
    def __init__(self, state_dir: Path | None) -> None:
        self.path = None if state_dir is None else state_dir / FILE_NAME
        self.member_id: str | None = None
        if self.path is not None and self.path.exists():
            self.member_id = self._read(self.path)

    @staticmethod
    def _read(path: Path) -> str:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{path}: cannot read the pinned portal ({err}); fix or delete it"
            ) from None
        member = doc.get("member_id") if isinstance(doc, dict) else None
        if not isinstance(member, str) or not member:
            raise ConfigError(f"{path}: no member_id in it; delete it to pin at the next sign-in")
        return member

    def pin(self, member_id: str, domain: str) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            doc = {"member_id": member_id, "domain": domain, "pinned_at": int(time.time())}
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc) + "\n", encoding="utf-8")
            os.replace(tmp, self.path)
        self.member_id = member_id
