"""The fan-out of several gateway processes through Redis (``CALLGUARD_REDIS_URL``): a frame
reaches every open tab of one user, whichever process holds the tab (:mod:`gateway.live.fanout`
holds the protocol and the one-process fan-out).

- **Local first.** ``publish`` queues the frame on this process's tabs, then puts it in a bounded
  outgoing queue and returns: it never awaits Redis. A writer task drains the queue in pipelines.
  Like a tab's outbox the queue keeps the newest frame per (user, call), so an outage of any
  length costs at most ``queue_size`` entries, oldest out first.
- **One shared channel** (``<prefix>fanout``), every message carrying its user id. Every process
  reads every paint and hands it to :meth:`gateway.live.tabs.Tabs.deliver`, which does nothing for a
  user with no tab here. Per-process channels would need a registry of which process holds which
  user's tabs, kept right through connects, disconnects and crashes; paints are a few hundred
  bytes at the rate calls ring, so reading them all is the cheaper side of that trade.
- **Current paints** live in one Redis hash (``<prefix>calls``): field ``[user, call]``, value
  ``[origin, expires_at, frame]``; a paint sets its field, a clear deletes it. Redis 7.0 has no
  per-field TTL, so each value carries its deadline (now + ``CALLGUARD_CALL_TIMEOUT``), readers
  skip expired ones and the hash itself expires a call timeout after the last paint. Each process
  mirrors the hash in memory: loaded (``HGETALL``) once the subscription is confirmed, then kept
  by the messages, applied in channel order. Messages that arrive during the load are applied
  after it; a paint or clear is idempotent, so the mirror ends at the newest state of each call.
  A tab that opens gets its user's mirrored paints (:meth:`elsewhere`, through
  ``Calls.current_frames``) with no Redis round trip, in the same order its live frames come in.
- **Two connections**, each a :class:`gateway.live.resp.RespConnection` (its docstring says why
  not redis-py's, which the rest of the gateway uses): the writer's, and the subscriber's, whose
  messages are handled as they are read, without a task step each.
- **Outages.** Reader and writer reconnect with exponential backoff; the first failure logs one
  warning and recovery one info line. After a reconnect the mirror is reloaded, and paints and
  clears missed meanwhile are delivered to the local tabs. ``health()`` says which state we are in.

A clear from another process also tells this process's :class:`gateway.live.calls.Calls` to drop the
call (``on_clear``), so a call ended on one process is not re-painted or cleared twice by another.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable

import orjson
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.live import wire
from gateway.live.fanout import frame_type
from gateway.live.resp import Backoff, Command, RespConnection
from gateway.live.tabs import Tabs
from gateway.store.url import mask

log = logging.getLogger("callguard.fanout")

_Entry = tuple[str, str | None, str, str]  # user, call id (None: unkeyed), frame, its type

QUEUE_SIZE = 1000  # frames waiting for Redis; colours are state, so the newest per call is kept
BATCH = 100  # frames per pipeline
IO_TIMEOUT = 2.0  # seconds for one Redis command or connect
IDLE_CHECK = 1.0  # seconds between the reader's checks of a quiet channel (expiry, health)


class RedisFanout:
    def __init__(
        self,
        tabs: Tabs,
        url: str,
        *,
        prefix: str = "callguard:",
        call_ttl: float = 900.0,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        self.tabs = tabs
        self.url = url
        self.channel = prefix + "fanout"
        self.state_key = prefix + "calls"
        self.call_ttl = call_ttl
        self.queue_size = queue_size
        self.origin = uuid.uuid4().hex[:12]  # this process, so it skips its own messages
        # How this process's messages start (orjson writes the hex origin as it is): they are
        # skipped unparsed, and a process reads back every message it publishes.
        self._own = b'["' + self.origin.encode() + b'",'
        self.on_clear: Callable[[str, str], None] | None = None  # a peer ended (user, call)
        self.connected = False  # subscribed and mirror loaded
        self.dropped = 0  # frames pushed out of a full queue
        self.down_since: float | None = None  # time.time() of the current outage's first error
        self._error = ""
        self.failures = 0  # failed attempts to reach Redis, all outages together
        self._changed = asyncio.Event()
        # user -> call id -> (frame, time.monotonic() it expires): paints held by other processes
        self._mirror: dict[str, dict[str, tuple[str, float]]] = {}
        self._pending: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._unkeyed = 0
        self._wake = asyncio.Event()
        self._sending = False  # a batch is on its way to Redis
        self._next_purge = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        # Messages read while the mirror loads, applied after it (None: not loading).
        self._early: list[bytes] | None = None
        # The two connections (gateway/live/resp.py), each owned by its loop below, which
        # reopens it after a failure. The subscriber waits as long as the channel is quiet.
        self._conn: RespConnection | None = None
        self._sub: RespConnection | None = None

    # -- the Fanout protocol -------------------------------------------------------------------

    async def publish(self, user_id: str, key: str | None, frame: str) -> None:
        self.tabs.deliver(user_id, key, frame)
        kind = frame_type(frame) if key is not None else ""  # once: the writer needs it too
        if key is not None and kind == "clear":
            self._drop(user_id, key)
        slot = (user_id, key) if key is not None else ("", f"\0{self._next_unkeyed()}")
        if slot not in self._pending and len(self._pending) >= self.queue_size:
            self._pending.popitem(last=False)
            self.dropped += 1
        self._pending[slot] = (user_id, key, frame, kind)
        self._pending.move_to_end(slot)
        self._wake.set()

    async def flush(self, seconds: float) -> None:
        """Shutdown: wait up to ``seconds`` until the queue is sent, to the other processes."""
        # Not during an outage: nothing would be sent, and the outage was logged once already.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self.wait_until(lambda f: f.down_since is not None or not f.unsent)
        if self._pending and self.down_since is None:
            log.warning("shutdown: %d paints or clears not sent to Redis", len(self._pending))

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for conn in (self._conn, self._sub):
            if conn is not None:
                conn.close()
        self._conn = self._sub = None

    # -- what other parts ask -----------------------------------------------------------------

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._read()), loop.create_task(self._write())]

    def elsewhere(self, user_id: str) -> dict[str, str]:
        """Call id -> current paint frame of ``user_id``'s calls painted by other processes."""
        calls = self._mirror.get(user_id)
        if not calls:
            return {}
        now = time.monotonic()
        for call_id in [c for c, (_, expires) in calls.items() if expires <= now]:
            del calls[call_id]
        if not calls:
            del self._mirror[user_id]
        return {call_id: frame for call_id, (frame, _) in calls.items()}

    async def wait_until(self, predicate: Callable[[RedisFanout], bool]) -> None:
        """Wait (tests: under ``asyncio.timeout``) until ``predicate(self)`` holds; checked after
        each connect and each failure."""
        while not predicate(self):
            await self._changed.wait()

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @property
    def unsent(self) -> bool:
        return bool(self._pending) or self._sending

    def health(self) -> dict[str, object]:
        return {
            "ok": self.down_since is None and self.connected,
            "mode": "redis",
            "queued": len(self._pending),
            "dropped": self.dropped,
            "reason": self._error or None,
        }

    # -- the writer ----------------------------------------------------------------------------

    async def _write(self) -> None:
        backoff = Backoff()
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch = [
                    self._pending.popitem(last=False) for _ in range(min(BATCH, len(self._pending)))
                ]
                self._sending = True
                try:
                    async with asyncio.timeout(IO_TIMEOUT):
                        if self._conn is None or self._conn.lost.done():
                            self._conn = await RespConnection.open(self.url, self._name("pub"))
                        await self._conn.execute(self._commands([e for _, e in batch]))
                except (RedisError, OSError) as err:
                    self._sending = False
                    if self._conn is not None:
                        self._conn.close()
                        self._conn = None
                    for slot, entry in reversed(batch):  # back in front, unless since replaced
                        if slot not in self._pending:
                            self._pending[slot] = entry
                            self._pending.move_to_end(slot, last=False)
                    while len(self._pending) > self.queue_size:
                        self._pending.popitem(last=False)
                        self.dropped += 1
                    self._outage(err)
                    await asyncio.sleep(backoff.next())
                    continue
                self._sending = False
                backoff.reset()
                if self.connected:  # the reader is connected too: the outage is over
                    self._recovered()
            self._signal()  # the queue is empty: flush() may be waiting for that

    def _commands(self, batch: list[_Entry]) -> list[Command]:
        """One batch's commands, written to Redis in one go."""
        expires = time.time() + self.call_ttl
        commands: list[Command] = []
        painted = False
        for user_id, key, frame, kind in batch:
            if key is not None:
                field = orjson.dumps([user_id, key])
                if kind == "paint":
                    value = orjson.dumps([self.origin, expires, frame])
                    commands.append(("HSET", self.state_key, field, value))
                    painted = True
                elif kind == "clear":
                    commands.append(("HDEL", self.state_key, field))
            message = orjson.dumps([self.origin, user_id, key, frame])
            commands.append(("PUBLISH", self.channel, message))
        if painted:
            commands.append(("EXPIRE", self.state_key, max(1, round(self.call_ttl))))
        return commands

    def _next_unkeyed(self) -> int:
        self._unkeyed += 1
        return self._unkeyed

    # -- the reader ----------------------------------------------------------------------------

    async def _read(self) -> None:
        backoff = Backoff()
        while True:
            try:
                # Load the hash only once Redis confirmed the subscription: every change after
                # the load then reaches us as a message. Those read during the load wait for it.
                self._early = []
                async with asyncio.timeout(IO_TIMEOUT):
                    self._sub = sub = await RespConnection.open(self.url, self._name("sub"))
                    await sub.subscribe(self.channel, self._arrived)
                    snapshot = await self._snapshot()
                self._load(snapshot)
                early, self._early = self._early, None
                for data in early:
                    self._receive(data)
                self.connected = True
                self._recovered()
                self._signal()
                backoff.reset()
                while not sub.lost.done():
                    await asyncio.wait([sub.lost], timeout=IDLE_CHECK)
                    self._purge()
                raise RedisConnectionError(sub.reason)
            except (RedisError, OSError, TimeoutError) as err:
                self.connected = False
                self._early = None
                if self._sub is not None:
                    self._sub.close()
                    self._sub = None
                self._outage(err)
            await asyncio.sleep(backoff.next())

    async def _snapshot(self) -> dict[bytes, bytes]:
        """The hash of current paints, read on a connection of its own."""
        conn = await RespConnection.open(self.url, self._name("load"))
        try:
            (flat,) = await conn.execute([("HGETALL", self.state_key)])
        finally:
            conn.close()
        return dict(zip(flat[::2], flat[1::2], strict=True))

    def _name(self, role: str) -> str:
        """A connection's name in ``CLIENT LIST``: whose it is and what it does."""
        return f"callguard-fanout-{role}-{self.origin}"

    def _arrived(self, data: bytes) -> None:
        if self._early is not None:
            self._early.append(data)
        else:
            self._receive(data)

    def _load(self, snapshot: dict[bytes, bytes]) -> None:
        """Replace the mirror with the hash; tell local tabs what changed while we were away."""
        now, wall = time.monotonic(), time.time()
        mirror: dict[str, dict[str, tuple[str, float]]] = {}
        for field, value in snapshot.items():
            try:
                user_id, call_id = orjson.loads(field)
                origin, expires, frame = orjson.loads(value)
            except (ValueError, TypeError):
                continue  # not ours to read: skip it
            if not (_texts(user_id, call_id, origin, frame) and _number(expires)):
                continue
            if origin != self.origin and expires > wall:
                mirror.setdefault(user_id, {})[call_id] = (frame, now + expires - wall)
        old, self._mirror = self._mirror, mirror
        for user_id, calls in mirror.items():
            for call_id, (frame, _) in calls.items():
                if old.get(user_id, {}).get(call_id, ("",))[0] != frame:
                    self.tabs.deliver(user_id, call_id, frame)
        for user_id, calls in old.items():
            for call_id in calls.keys() - mirror.get(user_id, {}).keys():
                self.tabs.deliver(user_id, call_id, wire.clear(call_id))

    def _receive(self, data: bytes) -> None:
        if data.startswith(self._own):
            return  # delivered locally when published
        try:
            origin, user_id, key, frame = orjson.loads(data)
            if not _texts(origin, user_id, frame) or not (key is None or isinstance(key, str)):
                raise TypeError("not a fanout frame")
            kind = frame_type(frame)
        except (ValueError, TypeError, AttributeError):
            # Anything on the shared channel may be foreign or from another version: a message
            # we cannot read is skipped, never allowed to end the reader.
            log.debug("skipping a message on %s that is not a fanout frame", self.channel)
            return
        if origin == self.origin:
            return  # delivered locally when published
        self.tabs.deliver(user_id, key, frame)
        if key is None:
            return
        if kind == "paint":
            self._mirror.setdefault(user_id, {})[key] = (frame, time.monotonic() + self.call_ttl)
        elif kind == "clear":
            self._drop(user_id, key)
            if self.on_clear is not None:
                self.on_clear(user_id, key)

    def _purge(self) -> None:
        """Forget expired paints of users who never asked (their owner died before clearing)."""
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + min(self.call_ttl, 60.0)
        for user_id in list(self._mirror):
            self.elsewhere(user_id)

    def _drop(self, user_id: str, call_id: str) -> None:
        calls = self._mirror.get(user_id)
        if calls is not None and calls.pop(call_id, None) is not None and not calls:
            del self._mirror[user_id]

    # -- one log line per outage ----------------------------------------------------------------

    def _outage(self, err: BaseException) -> None:
        said = str(err) or f"no answer within {IO_TIMEOUT:g} s"  # asyncio.timeout says nothing
        self._error = f"{type(err).__name__}: {said}"
        self.failures += 1
        self._signal()
        if self.down_since is None:
            self.down_since = time.time()
            log.warning(
                "Redis fanout at %s unavailable (%s); local tabs still get their paints, "
                "other processes' tabs do not until it is back",
                mask(self.url),
                self._error,
            )

    def _recovered(self) -> None:
        if self.down_since is not None:
            log.info(
                "Redis fanout at %s is back after %.1f s; %d frames dropped meanwhile",
                mask(self.url),
                time.time() - self.down_since,
                self.dropped,
            )
            self.down_since = None
        self._error = ""


def _texts(*values: object) -> bool:
    return all(isinstance(v, str) for v in values)


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
