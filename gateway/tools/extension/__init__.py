"""``callguard extension``: the browser extension for cloud portals (Manifest V3; Chromium and
Firefox), written unpacked into a folder plus a zip of it for the stores.

MV3 runs no remote code, so the snippet (static/callguard.js, the same file the ``<script>`` tag
loads) is bundled into the content script as it is; the portal and gateway addresses are written
into the scripts. The extension asks for ``storage`` and host access to exactly two origins: the
portal (where the content script runs) and the gateway (its socket and the sign-in pages).
Templates are in ``files/``; ``manifest()`` is the manifest as data (tests read it).
"""

from __future__ import annotations

import json
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from gateway import __version__
from gateway.web.app import STATIC_DIR

FILES = Path(__file__).parent / "files"
SNIPPET = STATIC_DIR / "callguard.js"
TEMPLATES = ("background.js", "content.js", "signin.js", "options.js")
COPIED = ("options.html",)
ICON_SIZES = (16, 48, 128)
ICON_RGB = (0xD3, 0x2F, 0x2F)  # the red of rules/default.toml

TEXTS = {
    "ru": {
        "description": "Окрашивает окно звонка Битрикс24, когда номер принадлежит клиенту коллеги",
        "portal": "Портал",
        "gateway": "Сервер Callguard",
        "status": "Вход",
        "signed_in": "пользователь {user}, до {until}",
        "signed_out": "вход не выполнен",
        "sign_in": "Войти через Битрикс24",
    },
    "en": {
        "description": "Colours the Bitrix24 call popup when the number is a colleague's client",
        "portal": "Portal",
        "gateway": "Callguard server",
        "status": "Signed in",
        "signed_in": "user {user}, until {until}",
        "signed_out": "not signed in",
        "sign_in": "Sign in through Bitrix24",
    },
}


class ExtensionError(ValueError):
    """Bad input for the builder; ``str(err)`` is one line naming the option."""


@dataclass(frozen=True, slots=True)
class Target:
    portal: str  # origin: https://example.bitrix24.ru
    gateway: str  # origin + path prefix, no trailing slash: https://callguard.example.com
    lang: str = "ru"

    @property
    def ws(self) -> str:
        scheme, rest = self.gateway.split("://", 1)
        return ("wss" if scheme == "https" else "ws") + "://" + rest + "/ws"

    @property
    def gecko_id(self) -> str:
        host = urlsplit(self.gateway).hostname or "gateway"
        return f"callguard@{host}"


def target(portal: str, gateway: str, lang: str = "ru") -> Target:
    """Check and normalise the two addresses; :class:`ExtensionError` names a bad one."""
    p = urlsplit(portal.strip())
    if p.scheme not in ("http", "https") or not p.hostname:
        raise ExtensionError(f"--portal must be the portal's https URL, got {portal!r}")
    g = urlsplit(gateway.strip())
    if g.scheme not in ("http", "https") or not g.hostname or g.query or g.fragment:
        raise ExtensionError(f"--gateway must be the gateway's public https URL, got {gateway!r}")
    if lang not in TEXTS:
        raise ExtensionError(f"--lang must be ru or en, got {lang!r}")
    # The portal by its origin only: a webhook URL (/rest/1/<code>/) must not end up in a file.
    return Target(f"{p.scheme}://{p.netloc}", f"{g.scheme}://{g.netloc}{g.path.rstrip('/')}", lang)


def check_version(version: str) -> str:
    """A manifest version: one to four numbers 0-65535 joined by dots (a release's ``+local``
    or ``-pre`` part dropped). Browsers update an installed extension only to a higher one."""
    plain = version.split("+")[0].split("-")[0]
    parts = plain.split(".")
    if not 1 <= len(parts) <= 4 or not all(p.isdigit() and int(p) <= 65535 for p in parts):
        raise ExtensionError(f"--version must look like 1.2.3 or 1.2.3.4, got {version!r}")
    return plain


def match(origin: str) -> str:
    """A match pattern for every page of ``origin``; ports are left out: Firefox does not
    match them, and Chromium matches any port when none is given."""
    parts = urlsplit(origin)
    return f"{parts.scheme}://{parts.hostname}/*"


def manifest(t: Target, version: str = __version__) -> dict[str, Any]:
    return {
        "manifest_version": 3,
        "name": "Callguard",
        "version": check_version(version),
        "description": TEXTS[t.lang]["description"],
        "permissions": ["storage"],
        "host_permissions": [match(t.portal), match(t.gateway)],
        # Chromium runs the service worker, Firefox the script: the same file.
        "background": {"service_worker": "background.js", "scripts": ["background.js"]},
        "content_scripts": [
            {"matches": [match(t.portal)], "js": ["content.js"], "run_at": "document_idle"},
            {
                "matches": [f"{match(t.gateway)[:-2]}{urlsplit(t.gateway).path}/auth/callback*"],
                "js": ["signin.js"],
                "run_at": "document_idle",
            },
        ],
        "options_ui": {"page": "options.html", "open_in_tab": True},
        "action": {"default_title": "Callguard", "default_icon": _icons()},
        "icons": _icons(),
        "browser_specific_settings": {"gecko": {"id": t.gecko_id, "strict_min_version": "121.0"}},
    }


def build(t: Target, out: Path, version: str = __version__) -> tuple[Path, Path]:
    """Write the unpacked extension into ``out`` (emptied first) and ``out``.zip beside it."""
    if out.exists():
        if not out.is_dir():
            raise ExtensionError(f"--out {out} is a file, not a folder")
        if any(out.iterdir()) and not (out / "manifest.json").exists():
            raise ExtensionError(f"--out {out} is a folder with other things in it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    config = {
        "portal": t.portal,
        "gateway": t.gateway,
        "ws": t.ws,
        "lang": t.lang,
        "debug": False,
        "texts": TEXTS[t.lang],
    }
    values = {
        "__CALLGUARD_CONFIG__": json.dumps(config, ensure_ascii=False),
        "__CALLGUARD_SNIPPET__": SNIPPET.read_text(encoding="utf-8"),
    }
    for name in TEMPLATES:
        text = (FILES / name).read_text(encoding="utf-8")
        for key, value in values.items():
            text = text.replace(key, value)
        (out / name).write_text(text, encoding="utf-8")
    for name in COPIED:
        shutil.copyfile(FILES / name, out / name)
    for size in ICON_SIZES:
        (out / f"icon{size}.png").write_bytes(_png(size))
    text = json.dumps(manifest(t, version), ensure_ascii=False, indent=2) + "\n"
    (out / "manifest.json").write_text(text, encoding="utf-8")
    archive = out.with_name(out.name + ".zip")
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(out.iterdir()):
            zf.write(file, file.name)
    return out, archive


def _icons() -> dict[str, str]:
    return {str(size): f"icon{size}.png" for size in ICON_SIZES}


def _png(size: int) -> bytes:
    """A plain square in Callguard's red: the stores want icons, and no image library is needed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    row = b"\x00" + bytes(ICON_RGB) * size
    header = struct.pack(">IIBBBBB", size, size, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * size))
        + chunk(b"IEND", b"")
    )
