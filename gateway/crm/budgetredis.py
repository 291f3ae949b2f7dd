"""The budget's level in Redis: one bucket for every gateway process (``CALLGUARD_REDIS_URL``).

Bitrix24 counts per portal and source IP, so processes that each kept their own bucket would
together overrun the portal's. One Lua script drains and takes atomically on Redis' clock (no
process clock skew, no read-modify-write between processes).
"""

from __future__ import annotations

import math
from typing import Any

from redis.asyncio import Redis

TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst, rate, cap = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local v = redis.call('HMGET', KEYS[1], 'level', 'stamp')
local level = tonumber(v[1]) or 0
local stamp = tonumber(v[2]) or now
level = math.max(0, level - math.max(0, now - stamp) * rate)
local wait = 0
if ARGV[4] == 'fill' then
  level = math.max(level, burst)
elseif level + 1 <= cap then
  level = level + 1
else
  wait = (level + 1 - cap) / rate
end
redis.call('HSET', KEYS[1], 'level', tostring(level), 'stamp', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[5]))
return tostring(wait)
"""


class RedisLevel:
    def __init__(self, redis: Redis, key: str, burst: int, per_second: float) -> None:
        self.redis = redis
        self.key = key
        self.burst = burst
        self.per_second = per_second
        self.ttl = math.ceil(burst / per_second) + 60  # an idle bucket is empty by then anyway
        self._script: Any = redis.register_script(TAKE)

    async def _run(self, cap: float, mode: str) -> float:
        args = [self.burst, self.per_second, cap, mode, self.ttl]
        return float(await self._script(keys=[self.key], args=args))

    async def take(self, cap: float) -> float:
        return await self._run(cap, "take")

    async def fill(self) -> None:
        await self._run(0, "fill")

    async def close(self) -> None:
        await self.redis.aclose()
