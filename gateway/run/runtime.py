"""The object graph of one running gateway: built once from Settings, reached by every endpoint.

Where CRM data comes from is chosen in one place, :func:`gateway.crm.build.build_directory`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from gateway import __version__
from gateway.crm import Directory
from gateway.crm.build import build_directory
from gateway.crm.dataset import Dataset
from gateway.ledger.writer import LedgerWriter
from gateway.live.calls import Calls
from gateway.live.fanout import Fanout, LocalFanout
from gateway.live.redisfanout import RedisFanout
from gateway.live.renewals import Renewals
from gateway.live.tabs import Tabs
from gateway.run.config import ConfigError, Settings
from gateway.run.metrics import Metrics
from gateway.run.probes import GcProbe, LagProbe
from gateway.run.refusals import Refusals
from gateway.store.database import Database
from gateway.store.ledger import Ledger
from rules.policy import Policy, PolicyError, load_policy


def load_rules(settings: Settings) -> Policy:
    try:
        return load_policy(settings.rules)
    except PolicyError as err:
        raise ConfigError(f"CALLGUARD_RULES: {err}") from None


def check_statuses(directory: Directory, policy: Policy) -> None:
    """A data file's company statuses must all be codes of the rules file."""
    data = directory.dataset
    if data is None:
        return
    bad = data.unknown_statuses(policy.status_codes)
    if bad:
        statuses = sorted({data.companies[i].status or "" for i in bad})
        raise ConfigError(
            f"CALLGUARD_DIRECTORY: companies {', '.join(bad)} in {data.source} have "
            f"statuses {', '.join(statuses)} that {policy.source} does not list "
            f"(known: {', '.join(policy.status_codes)})"
        )


@dataclass(eq=False)
class Gateway:
    settings: Settings
    directory: Directory
    policy: Policy
    owns_directory: bool
    metrics: Metrics = field(default_factory=Metrics)
    version: str = __version__

    def __post_init__(self) -> None:
        s = self.settings
        # Durable state (approved statuses): opened and migrated in start(), closed last.
        self.database = Database(
            s.database_url,
            timeout=s.database_timeout,
            pool_size=s.database_pool,
            registry=self.metrics.registry,
        )
        # A send blocked for a quarter heartbeat means the peer stopped reading; the sweep runs
        # eight times per heartbeat, so such a tab is closed (1013) before the websocket ping,
        # which the stopped peer cannot answer either, gives up on it (1011).
        self.tabs = Tabs(
            queue_bytes=s.tab_queue_bytes,
            stuck_after=s.heartbeat / 4,
            call_rate=s.tab_call_rate,
            max_per_user=s.max_tabs_per_user,
        )
        self.tabs.on_close = lambda code: self.metrics.tab_closes.labels(str(code)).inc()
        # Refused connections (the server's limits) and tabs (too many of one user): counted,
        # and logged at most once a minute per reason.
        self.refusals = Refusals(self.metrics)
        self.tabs.on_evict = lambda user: self.refusals.refuse("too_many_tabs", f"user {user}")
        self.renewals = Renewals(s.secret)
        self.renewals.on_renew = self.metrics.token_renewals.inc
        # CALLGUARD_REDIS_URL: paints cross processes through Redis; unset: this process only.
        self.shared: RedisFanout | None = None
        if s.redis_url is None:
            self.fanout: Fanout = LocalFanout(self.tabs)
        else:
            self.fanout = self.shared = RedisFanout(
                self.tabs, s.redis_url, prefix=s.redis_prefix, call_ttl=s.call_timeout
            )
        # The ledger of decided calls (CALLGUARD_LEDGER_DAYS=0: none), written in the background.
        self.ledger = Ledger(self.database)
        self.recorder: LedgerWriter | None = None
        if s.ledger_days > 0:
            self.recorder = LedgerWriter(
                self.database,
                capacity=s.ledger_queue,
                days=s.ledger_days,
                registry=self.metrics.registry,
            )
        self.calls = Calls(
            self.directory,
            self.policy,
            self.fanout,
            self.metrics,
            region=s.region,
            lookup_deadline=s.lookup_deadline,
            call_timeout=s.call_timeout,
            peers=self.shared,
            lang=s.lang,
            ledger=self.recorder,
            user_inflight=s.user_inflight,
            max_inflight=s.max_inflight,
        )
        if self.shared is not None:
            self.shared.on_clear = self.calls.forget
        self.metrics.watch(
            lambda: self.tabs.count, lambda: self.tabs.users, lambda: self.calls.active
        )
        places = self.calls.inflight
        self.metrics.watch_inflight(
            lambda: places.count, lambda: places.peak, lambda: places.user_peak
        )
        self.lag = LagProbe(self.metrics)
        self.gc = GcProbe(self.metrics)
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def dataset(self) -> Dataset | None:
        """The data file behind the directory, when there is one (the demo lists it)."""
        return self.directory.dataset

    async def start(self) -> None:
        await self.database.open()
        if self.recorder is not None:
            self.recorder.start()
        self._sweeper = asyncio.get_running_loop().create_task(
            self.tabs.run_sweeps(self.settings.heartbeat / 8)
        )
        self.lag.start()
        self.gc.start()
        if self.shared is not None:
            self.shared.start()

    async def stop(self) -> None:
        self.gc.stop()
        await self.lag.stop()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.gather(self._sweeper, return_exceptions=True)
        self.renewals.close()
        self.tabs.close_all()
        self.refusals.close()
        await self.calls.close()
        if self.recorder is not None:
            await self.recorder.stop()
        await self.fanout.close()
        if self.owns_directory:
            await self.directory.close()
        await self.database.close()


def build_gateway(settings: Settings, directory: Directory | None = None) -> Gateway:
    """Everything a gateway needs, validated; raises :class:`ConfigError` naming the variable."""
    policy = load_rules(settings)
    owns = directory is None
    if directory is None:
        directory = build_directory(settings)
    check_statuses(directory, policy)
    return Gateway(settings, directory, policy, owns_directory=owns)
