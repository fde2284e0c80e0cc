"""The control-plane Faust app: every worker holds all partners, agreements and consents.

Each control topic is the changelog of a Faust ``GlobalTable`` with
``synchronize_all_active_partitions=True``: the Faust partition assignor then gives
every member of the group every partition of the topic, both as an active (recovered
at start) and as a standby (kept reading afterwards), so every worker holds the whole
control plane whichever ingress partitions it owns, and keeps following it live. (A
plain ``GlobalTable`` leaves the member that owns a partition with it as an active
only, and Faust pauses active-only changelog partitions after recovery unless the
recovery buffer is one record: faust-streaming issue #283.)

The tables are only read here; nothing in this process writes to them. Changes come
from :func:`~ecoshare.governance.control_plane.control_writer` (or any Kafka
client) and are applied by :meth:`ControlTable.apply_changelog_batch`, which Faust
calls for every changelog record, during recovery and as a standby alike. That hook
also keeps the bookkeeping the hot path needs and publishes a new immutable
:class:`~ecoshare.governance.control_plane.ControlSnapshot` after each change.

Faust behaviours handled on the way (in ``ControlTable`` and the ledger):

- the partition assignor looks a global table's changelog up by the *default*
  changelog name (``{app_id}-{table}-changelog``), not the topic given as
  ``changelog_topic``; the table reports its real topic name instead;
- Faust seeks changelog partitions back to their start on some paths (standbys after
  every recovery; a partition revoked and assigned again) and relies on its own
  offset bookkeeping to drop what it already applied. The ledger also skips any record
  at or below the offset it has applied, so a key can never turn back to an older
  value, whatever Faust replays;
- after recovery, a partition that is both active and standby (every partition here)
  keeps delivering through the *active* path, whose records wait in the recovery
  buffer until it holds ``recovery_buffer_size`` of them (1000 by default): a live
  consent change would sit there unapplied. The tables use buffers of one record, so
  every record is applied as it arrives, on any broker. (On the embedded broker the
  same buffer also catches the records past the end that its ListOffsets under-reports
  after multi-record batches: a rebuild of 2000 keys was seen holding 3.)

On the embedded broker (tansu), and only there, two behaviours of aiokafka's consumer
are adjusted: the fetch wait and leaving the group from generation 0; see
:mod:`ecoshare.governance.tansu_compat`. On Apache Kafka the Faust app runs as shipped.
Which broker it is comes from the cluster itself (:func:`cluster_broker_kind`), unless
the caller says.

Rebuild completeness does not rest on Faust alone: :meth:`ControlApp.wait_until_rebuilt`
reads the topics independently and applies whatever the tables lack (counted in
:attr:`ControlApp.gap_fills`).

Running it: :meth:`ControlApp.start_in_thread` (own event loop in a daemon thread; the
caller stops it with :meth:`ControlApp.stop_thread`, e.g. from its SIGTERM handler),
:meth:`ControlApp.run_forever` (blocks the main thread, stops on SIGTERM/SIGINT), or
``await start()`` / ``await stop()`` on a loop the caller runs. The Faust app is built
on the loop that runs it, so that every Faust service binds to that loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import faust
from faust.tables.globaltable import GlobalTable
from faust.types import EventT

from ecoshare.adapters.brokers import BrokerKind
from ecoshare.adapters.kafka.admin import cluster_broker_kind
from ecoshare.config.topics import TopicNames
from ecoshare.governance.control_ledger import ChangeCallback, ControlLedger
from ecoshare.governance.control_plane import (
    ControlKind,
    ControlPlaneNotRebuiltError,
    ControlSnapshot,
    ControlTopicsContents,
    read_control_topics,
)
from ecoshare.governance.tansu_compat import TansuFaustApp

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.01


@dataclass(frozen=True, slots=True)
class ControlAppConfig:
    """How a control-plane worker connects and identifies itself.

    ``app_id`` is the Faust app id and the consumer group: the workers of one
    deployment share it, and it must be unique per deployment (tests use a fresh one).
    ``web_port`` ``None`` disables Faust's web server. ``broker`` says which broker
    the app talks to: ``"tansu"`` turns on :mod:`~ecoshare.governance.tansu_compat`
    (and ``fetch_max_wait_ms`` applies there only), ``"kafka"`` runs Faust as shipped.
    """

    app_id: str
    bootstrap_servers: str
    names: TopicNames
    data_dir: Path
    partitions: int = 1
    web_port: int | None = None
    web_host: str = "127.0.0.1"
    session_timeout_seconds: float = 6.0
    fetch_max_wait_ms: int = 100
    catch_up_grace_seconds: float = 5.0
    broker: BrokerKind = "kafka"


class ControlTable(GlobalTable):
    """A GlobalTable whose changelog is a control topic written outside this app."""

    def __init__(
        self, app: faust.App, *, kind: ControlKind, ledger: ControlLedger, **kwargs: Any
    ) -> None:
        self.kind = kind
        self._ledger = ledger
        super().__init__(app, **kwargs)

    def _changelog_topic_name(self) -> str:
        # The assignor resolves global-table changelogs by this name; without the
        # override it looks for "{app_id}-{name}-changelog" and the assignment fails.
        return self.changelog_topic.get_topic_name()

    def apply_changelog_batch(self, batch: Iterable[EventT[Any]]) -> None:
        self._ledger.apply_events(self.kind, batch)


class ControlApp:
    """A worker's live copy of the control plane, held in three Faust GlobalTables.

    Thread-safety: :meth:`snapshot` and :meth:`subscribe` may be called from any
    thread; :meth:`wait_until_rebuilt` from any thread but the app's event loop.
    """

    def __init__(self, config: ControlAppConfig) -> None:
        self.config = config
        self._ledger = ControlLedger()
        self._app: faust.App | None = None
        self._tables: dict[ControlKind, ControlTable] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._recovered = threading.Event()
        self._thread: threading.Thread | None = None
        self._stop_requested: asyncio.Event | None = None

    # -- reading ------------------------------------------------------------------------

    def snapshot(self) -> ControlSnapshot:
        """The latest applied state. Cheap: returns the current immutable object."""
        return self._ledger.snapshot

    def subscribe(self, callback: ChangeCallback) -> Callable[[], None]:
        """Call ``callback(snapshot, changes)`` after each published change; return an
        unsubscribe function. Callbacks run on the app's event loop: keep them short and
        never block in them."""
        return self._ledger.subscribe(callback)

    @property
    def gap_fills(self) -> int:
        """Records the Faust tables missed and :meth:`wait_until_rebuilt` applied."""
        return self._ledger.gap_fills

    @property
    def undecodable_records(self) -> int:
        """Control records skipped because their key or value was not valid."""
        return self._ledger.undecodable

    @property
    def faust_app(self) -> faust.App:
        if self._app is None:
            raise RuntimeError("the control app has not been started")
        return self._app

    @property
    def tables(self) -> Mapping[ControlKind, ControlTable]:
        return MappingProxyType(self._tables)

    def wait_until_rebuilt(self, timeout_seconds: float = 30.0) -> ControlSnapshot:
        """Block until the state holds everything the control topics hold now.

        Waits for Faust's table recovery, reads every control partition to its true
        end with an independent consumer, then waits until the published snapshot has
        applied every partition up to that end. If the tables still lack records after
        ``catch_up_grace_seconds`` (or skipped some), they are applied from what was
        read, counted in :attr:`gap_fills` and logged. Returns the snapshot that
        covers the topics; raises :class:`ControlPlaneNotRebuiltError` on timeout.
        """
        if self._loop_thread == threading.get_ident():
            raise RuntimeError("wait_until_rebuilt would block the control app's own loop")
        deadline = time.monotonic() + timeout_seconds
        if not self._recovered.wait(timeout=max(0.0, deadline - time.monotonic())):
            raise ControlPlaneNotRebuiltError(
                f"Faust table recovery of {self.config.app_id!r} did not complete within "
                f"{timeout_seconds:.0f}s; is the broker reachable and the group joinable?"
            )
        contents = read_control_topics(
            self.config.bootstrap_servers,
            self.config.names,
            timeout_seconds=max(0.1, deadline - time.monotonic()),
        )
        grace_end = min(deadline, time.monotonic() + self.config.catch_up_grace_seconds)
        while not _covers(self.snapshot(), contents) and time.monotonic() < grace_end:
            time.sleep(_POLL_SECONDS)
        if not _covers(self.snapshot(), contents) or _missing(self.snapshot(), contents):
            loop = self._loop
            if loop is None:
                raise RuntimeError("the control app is not running")
            future = concurrent.futures.Future[int]()
            loop.call_soon_threadsafe(_complete, future, self._ledger.fill_gaps, contents)
            try:
                filled = future.result(timeout=max(0.1, deadline - time.monotonic()))
            except concurrent.futures.TimeoutError as exc:
                raise ControlPlaneNotRebuiltError(
                    "the control app's event loop did not apply the missing records in time"
                ) from exc
            if filled:
                logger.warning(
                    "control tables of %r lacked %d record(s) after recovery; applied them "
                    "from the control topics",
                    self.config.app_id,
                    filled,
                )
        snapshot = self.snapshot()
        if not _covers(snapshot, contents):
            raise ControlPlaneNotRebuiltError("control-plane state does not cover its topics")
        return snapshot

    # -- running -------------------------------------------------------------------------

    async def start(self) -> None:
        """Build the Faust app on the running loop and start it; returns once started
        (not rebuilt: call :meth:`wait_until_rebuilt` from another thread for that)."""
        if self._app is not None:
            raise RuntimeError("a ControlApp runs once; create a new one to start again")
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._app = self._build_faust_app(self._loop)
        await self._app.start()

    async def stop(self) -> None:
        """Stop the Faust app: leave the group and close its clients."""
        if self._app is not None:
            await self._app.stop()
            self._ledger.publish()

    def start_in_thread(self, *, timeout_seconds: float = 30.0) -> None:
        """Run the app on its own event loop in a daemon thread; return once started."""
        if self._thread is not None:
            raise RuntimeError("the control app is already running in a thread")
        started = concurrent.futures.Future[None]()
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(started,),
            name=f"control-plane-{self.config.app_id}",
            daemon=True,
        )
        self._thread.start()
        started.result(timeout=timeout_seconds)

    def stop_thread(self, *, timeout_seconds: float = 30.0) -> None:
        """Stop an app started with :meth:`start_in_thread` and wait for its thread."""
        thread = self._thread
        if thread is None:
            return
        self.request_stop()
        thread.join(timeout_seconds)
        if thread.is_alive():
            raise TimeoutError(f"control app thread did not stop within {timeout_seconds:.0f}s")
        self._thread = None

    def request_stop(self) -> None:
        """Ask a running :meth:`start_in_thread` or :meth:`run_forever` app to stop.

        Thread-safe and non-blocking (safe to call from a signal handler)."""
        loop, requested = self._loop, self._stop_requested
        if loop is not None and requested is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(requested.set)

    def run_forever(self, on_started: Callable[[ControlApp], None] | None = None) -> None:
        """Run the app in the calling (main) thread until SIGTERM or SIGINT, then stop it.

        ``on_started(self)`` runs on the app's loop once the app has started, e.g. to
        start the hot-path thread (which may then call :meth:`wait_until_rebuilt`).
        """
        asyncio.run(self._run_until_signalled(on_started))

    async def _run_until_signalled(self, on_started: Callable[[ControlApp], None] | None) -> None:
        loop = asyncio.get_running_loop()
        self._stop_requested = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._stop_requested.set)
        try:
            await self.start()
            if on_started is not None:
                on_started(self)
            await self._stop_requested.wait()
        finally:
            await self.stop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)

    def _thread_main(self, started: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._run_in_thread(started))
        except Exception:
            logger.exception("control app %r stopped with an error", self.config.app_id)
        finally:
            _close_loop(loop)

    async def _run_in_thread(self, started: concurrent.futures.Future[None]) -> None:
        self._stop_requested = asyncio.Event()
        try:
            await self.start()
        except BaseException as exc:
            started.set_exception(exc)
            await self.stop()
            return
        started.set_result(None)
        try:
            await self._stop_requested.wait()
        finally:
            await self.stop()

    def _build_faust_app(self, loop: asyncio.AbstractEventLoop) -> faust.App:
        config = self.config
        app_class = TansuFaustApp if config.broker == "tansu" else faust.App
        app = app_class(
            config.app_id,
            broker=[f"kafka://{server}" for server in config.bootstrap_servers.split(",")],
            store="memory://",
            datadir=str(config.data_dir),
            autodiscover=False,
            topic_replication_factor=1,
            topic_partitions=config.partitions,
            # The control topics exist (ensure_control_topics); Faust creates nothing,
            # and without the leader topic it needs no topic of its own at all.
            topic_allow_declare=False,
            topic_disable_leader=True,
            web_enabled=config.web_port is not None,
            web_port=config.web_port or 6066,
            web_bind=config.web_host,
            web_host=config.web_host,
            broker_session_timeout=config.session_timeout_seconds,
            broker_heartbeat_interval=config.session_timeout_seconds / 6,
            consumer_auto_offset_reset="earliest",
            loop=loop,
        )
        if isinstance(app, TansuFaustApp):
            app.fetch_max_wait_ms = config.fetch_max_wait_ms
        for kind in ControlKind:
            topic = app.topic(
                kind.topic(config.names),
                key_type=bytes,
                value_type=bytes,
                key_serializer="raw",
                value_serializer="raw",
                partitions=config.partitions,
                compacting=True,
                internal=False,
            )
            table = ControlTable(
                app,
                kind=kind,
                ledger=self._ledger,
                name=f"control-{kind.value}",
                changelog_topic=topic,
                key_type=bytes,
                value_type=bytes,
                store="memory://",
                partitions=config.partitions,
                beacon=app.tables.beacon,
                is_global=True,
                synchronize_all_active_partitions=True,
                recovery_buffer_size=1,
                standby_buffer_size=1,
                on_recover=self._on_recovered,
            )
            app.tables.add(table)
            self._tables[kind] = table
            self._ledger.stores[kind] = table.data
        return app

    async def _on_recovered(self) -> None:
        self._recovered.set()


def create_control_app(
    app_id: str,
    bootstrap_servers: str,
    names: TopicNames,
    *,
    data_dir: Path,
    web_port: int | None = None,
    partitions: int = 1,
    session_timeout_seconds: float = 6.0,
    fetch_max_wait_ms: int = 100,
    broker: BrokerKind | None = None,
) -> ControlApp:
    """A control-plane worker app (not started). See :class:`ControlAppConfig`.

    ``broker`` ``None`` asks the cluster which broker it is."""
    if broker is None:
        broker = cluster_broker_kind(bootstrap_servers)
    logger.info(
        "control app %s on %s: %s",
        app_id,
        broker,
        "Faust with the tansu adjustments" if broker == "tansu" else "Faust as shipped",
    )
    return ControlApp(
        ControlAppConfig(
            app_id=app_id,
            bootstrap_servers=bootstrap_servers,
            names=names,
            data_dir=data_dir,
            partitions=partitions,
            web_port=web_port,
            session_timeout_seconds=session_timeout_seconds,
            fetch_max_wait_ms=fetch_max_wait_ms,
            broker=broker,
        )
    )


def _covers(snapshot: ControlSnapshot, contents: ControlTopicsContents) -> bool:
    return all(
        snapshot.positions.get(tp, 0) > last_offset
        for tp, last_offset in contents.last_offsets.items()
    )


def _missing(snapshot: ControlSnapshot, contents: ControlTopicsContents) -> bool:
    """Whether a key's last record in the topics is newer than what the snapshot holds."""
    return any(
        record.newer_than(snapshot.applied_at[kind].get(key))
        for kind, latest in contents.latest.items()
        for key, record in latest.items()
    )


def _complete(
    future: concurrent.futures.Future[int],
    fill: Callable[[ControlTopicsContents], int],
    contents: ControlTopicsContents,
) -> None:
    try:
        future.set_result(fill(contents))
    except Exception as exc:
        future.set_exception(exc)


def _close_loop(loop: asyncio.AbstractEventLoop) -> None:
    try:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
    finally:
        asyncio.set_event_loop(None)
        loop.close()
