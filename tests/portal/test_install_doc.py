"""docs/install-box.md is tested: its PHP token function makes tokens the gateway accepts.

The PHP is cut out of the doc between its markers and run with ``php``. Where php is not installed
(``apt-get install php-cli``; .ci/run installs it) that test is skipped, and
:func:`php_token_steps` — the same byte-level steps written in Python — still shows that the
function's output is what the gateway accepts.
"""

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from gateway.live.tokens import TokenError, verify_token
from gateway.portal.events import HANDLED_EVENTS
from tests.timing import timeout

DOC = Path(__file__).resolve().parents[2] / "docs" / "install-box.md"
SECRET = "a-secret-of-32-characters-or-more!!"
PHP = shutil.which("php")


def doc_between(marker: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    match = re.search(rf"{marker}:begin(.*?){marker}:end", text, re.DOTALL)
    assert match, f"docs/install-box.md has no {marker}:begin ... {marker}:end block"
    return match.group(1)


def run_php_token(user_id: str, ttl: int, now: int) -> str:
    assert PHP is not None
    function = doc_between("// callguard-token")
    script = (
        "<?php\n" + function + "\n"
        "echo callguard_token($argv[1], $argv[2], (int)$argv[3], (int)$argv[4]);\n"
    )
    result = subprocess.run(
        [PHP, "-r", script.removeprefix("<?php\n"), "--", SECRET, user_id, str(ttl), str(now)],
        capture_output=True,
        text=True,
        timeout=timeout(2),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def php_token_steps(secret: str, user_id: str, ttl: int, now: int) -> str:
    """What the doc's PHP does, byte for byte: json_encode (compact, keys in order) -> base64url
    without padding -> HMAC-SHA256 over "header.claims" with the raw secret."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")

    def php_json(value: dict[str, object]) -> bytes:
        return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()

    header = b64(php_json({"alg": "HS256", "typ": "JWT"}))
    claims = b64(php_json({"sub": user_id, "iat": now, "exp": now + ttl}))
    mac = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(mac)}"


@pytest.mark.skipif(
    PHP is None,
    reason="php is not installed (apt-get install php-cli); test_python_reproduction_of_the_php_steps covers the same bytes",
)
def test_the_docs_php_makes_tokens_the_gateway_accepts() -> None:
    now = int(time.time())
    token = run_php_token("1269", 43200, now)
    assert verify_token(SECRET, token) == "1269"
    # And the Python reproduction below is exact, so it stands in for php where php is missing.
    assert token == php_token_steps(SECRET, "1269", 43200, now)
    expired = run_php_token("1269", 60, now - 3600)
    with pytest.raises(TokenError, match="token expired"):
        verify_token(SECRET, expired)
    with pytest.raises(TokenError, match="token signature does not match"):
        verify_token(SECRET + "x", token)


def test_python_reproduction_of_the_php_steps() -> None:
    token = php_token_steps(SECRET, "7", 43200, int(time.time()))
    assert verify_token(SECRET, token) == "7"


# Just enough of Bitrix's API for init.php to run: it records the handler and the added strings.
BITRIX_STUBS = r"""<?php
namespace Bitrix\Main {
    class EventManager {
        public static array $handlers = [];
        public static function getInstance(): self { return new self(); }
        public function addEventHandler(string $module, string $event, callable $handler): void {
            self::$handlers[] = [$module, $event, $handler];
        }
    }
}
namespace Bitrix\Main\Page {
    class Asset {
        public static array $strings = [];
        public static function getInstance(): self { return new self(); }
        public function addString(string $s, bool $unique = false, ?string $location = null): void {
            self::$strings[] = [$s, $location];
        }
    }
    class AssetLocation { const AFTER_JS_KERNEL = 'AFTER_JS_KERNEL'; }
}
namespace {
    function htmlspecialcharsbx($s) { return htmlspecialchars((string)$s, ENT_QUOTES); }
    class CUser {
        public function __construct(private int $id) {}
        public function IsAuthorized(): bool { return $this->id > 0; }
        public function GetID(): int { return $this->id; }
    }
}
"""
RUNNER = r"""<?php
require __DIR__ . '/stubs.php';
$USER = new CUser((int)$argv[1]);
if ($argv[2] === 'admin') { define('ADMIN_SECTION', true); }
require __DIR__ . '/init.php';
foreach (Bitrix\Main\EventManager::$handlers as [$module, $event, $handler]) {
    echo "handler $module:$event\n";
    $handler();
}
echo json_encode(Bitrix\Main\Page\Asset::$strings), "\n";
"""


def php_blocks() -> list[str]:
    return re.findall(r"```php\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)


def run_init_php(tmp_path: Path, user_id: int, area: str) -> tuple[str, list[list[str]]]:
    assert PHP is not None
    [config] = [b for b in php_blocks() if "define('CALLGUARD_SECRET'" in b]
    [init] = [b for b in php_blocks() if "callguard-token:begin" in b]
    config = re.sub(r"'CALLGUARD_SECRET', '[^']*'", f"'CALLGUARD_SECRET', '{SECRET}'", config)
    (tmp_path / "callguard_config.php").write_text(config)
    (tmp_path / "init.php").write_text(init)
    (tmp_path / "stubs.php").write_text(BITRIX_STUBS)
    (tmp_path / "run.php").write_text(RUNNER)
    result = subprocess.run(
        [PHP, str(tmp_path / "run.php"), str(user_id), area],
        capture_output=True,
        text=True,
        timeout=timeout(2),
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    *lines, strings = result.stdout.strip().splitlines()
    return "\n".join(lines), json.loads(strings)


@pytest.mark.skipif(PHP is None, reason="php is not installed (apt-get install php-cli)")
def test_the_docs_init_php_injects_the_snippet_for_logged_in_users(tmp_path: Path) -> None:
    handlers, strings = run_init_php(tmp_path, 1269, "public")
    assert handlers == "handler main:OnProlog"
    [[tag, location]] = strings
    assert location == "AFTER_JS_KERNEL"
    match = re.fullmatch(
        r'<script src="https://callguard\.example\.ru/static/callguard\.js" '
        r'data-token="([A-Za-z0-9_.-]+)" async></script>',
        tag,
    )
    assert match, tag
    assert verify_token(SECRET, match.group(1)) == "1269"
    # Not in the admin area, not for guests.
    assert run_init_php(tmp_path, 1269, "admin")[1] == []
    assert run_init_php(tmp_path, 0, "public")[1] == []


def test_the_doc_lists_every_event_the_gateway_handles() -> None:
    listed = re.findall(r"^\| `(ON[A-Z]+)` \|", doc_between("<!-- callguard-events"), re.MULTILINE)
    assert sorted(listed) == sorted(HANDLED_EVENTS)


def test_the_nginx_config_keeps_tokens_out_of_its_logs() -> None:
    """Tabs send their token in the query (/ws?token=...): nginx logs the path, never the query."""
    text = DOC.read_text(encoding="utf-8")
    nginx = "\n".join(re.findall(r"```nginx\n(.*?)```", text, re.DOTALL))
    log_format = re.search(r"log_format\s+(\w+)\s+(.*?);", nginx, re.DOTALL)
    assert log_format, "the nginx config defines its own log_format"
    name, fields = log_format.groups()
    for leaky in ("$request ", '$request"', "$request_uri", "$args", "$query_string", "$arg_"):
        assert leaky not in fields + " ", leaky
    assert "$uri" in fields
    access_logs = re.findall(r"access_log\s+(\S+)(?:\s+(\w+))?;", nginx)
    assert access_logs
    assert all(fmt == name for _, fmt in access_logs)
    ws = re.search(r"location /ws \{(.*?)\}", nginx, re.DOTALL)
    assert ws
    assert re.search(r"error_log\s+\S+\s+crit;", ws.group(1))
    assert "X-Forwarded-For" in nginx  # /healthz's detail stays for loopback, not for the proxy
