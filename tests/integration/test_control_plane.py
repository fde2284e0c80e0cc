"""Control-plane state held by every governance worker, against a real broker (each one).

Each test writes to fresh control topics and starts real Faust workers (in threads, or
in a child process for the signal test). Assertions are on state, never on wall time;
the measured change-to-visible delays are printed (run with ``-s`` to see them).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from faust.transport.drivers import aiokafka as faust_aiokafka

from ecoshare.adapters.kafka.control_records import DELETION_MARKER, decode_value, encode_value
from ecoshare.config.topics import TopicNames
from ecoshare.governance.control_app import ControlApp, create_control_app
from ecoshare.governance.control_plane import (
    ControlKind,
    ControlSnapshot,
    control_writer,
    ensure_control_topics,
)
from ecoshare.governance.tansu_compat import (
    APP_CLASS,
    FETCH_WAIT,
    LEAVE_AT_GENERATION_ZERO,
    installed_adjustments,
)

Change = tuple[ControlKind, str, dict[str, Any] | None]
State = dict[ControlKind, dict[str, dict[str, Any]]]

VISIBLE_WITHIN_SECONDS = 10.0  # a generous bound for the polling loops, not an SLO


def _batched_write(bootstrap_servers: str, names: TopicNames, changes: list[Change]) -> None:
    """Write with a batching producer: many records per produce request, one flush."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap_servers,
            "linger.ms": 50,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "log_level": 3,
        }
    )
    for kind, key, value in changes:
        producer.produce(
            kind.topic(names),
            key=key.encode(),
            value=encode_value(DELETION_MARKER if value is None else value),
        )
    assert producer.flush(30) == 0


def _replay(changes: list[Change], state: State | None = None) -> State:
    result: State = state if state is not None else {kind: {} for kind in ControlKind}
    for kind, key, value in changes:
        if value is None:
            result[kind].pop(key, None)
        else:
            result[kind][key] = value
    return result


def _as_state(snapshot: ControlSnapshot) -> State:
    return {kind: dict(snapshot.records(kind)) for kind in ControlKind}


def _sample_changes(count: int) -> list[Change]:
    kinds = list(ControlKind)
    changes: list[Change] = [
        (kinds[i % 3], f"{kinds[i % 3]}-{i:05d}", {"n": i, "subject": f"s{i}", "rev": 1})
        for i in range(count)
    ]
    changes += [(kind, key, {**value, "rev": 2}) for kind, key, value in changes[::7] if value]
    deleted: list[Change] = [(kind, key, None) for kind, key, _ in changes[3:count:19]]
    revived: list[Change] = [(kind, key, {"revived": True}) for kind, key, _ in deleted[::5]]
    return changes + deleted + revived


def _topics(bootstrap_servers: str) -> set[str]:
    """Topics other than the broker's own (Apache Kafka creates ``__consumer_offsets``
    when the first group commits; tansu keeps offsets elsewhere)."""
    admin = AdminClient({"bootstrap.servers": bootstrap_servers, "log_level": 3})
    return {name for name in admin.list_topics(timeout=10).topics if not name.startswith("__")}


def _has_consent(app: ControlApp, key: str) -> Callable[[], bool]:
    return lambda: key in app.snapshot().consents


def _wait_for(condition: Callable[[], bool], what: str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > VISIBLE_WITHIN_SECONDS:
            pytest.fail(f"{what} not visible within {VISIBLE_WITHIN_SECONDS}s")
        time.sleep(0.001)
    return time.monotonic() - started


@pytest.fixture
def start_app(
    bootstrap_servers: str, topic_names: TopicNames, tmp_path: Path
) -> Iterator[Callable[..., ControlApp]]:
    running: list[ControlApp] = []

    def start(app_id: str, partitions: int = 1) -> ControlApp:
        app = create_control_app(
            app_id,
            bootstrap_servers,
            topic_names,
            data_dir=tmp_path / f"{app_id}-{len(running)}",
            partitions=partitions,
        )
        app.start_in_thread()
        running.append(app)
        return app

    yield start
    for app in running:
        app.stop_thread()


def test_writer_writes_one_acknowledged_record_per_call(
    bootstrap_servers: str, topic_names: TopicNames
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names)
    with control_writer(bootstrap_servers, topic_names) as writer:
        first = writer.put(ControlKind.AGREEMENT, "agr-1", {"version": 1})
        second = writer.put(ControlKind.AGREEMENT, "agr-1", {"version": 2})
        deleted = writer.delete(ControlKind.AGREEMENT, "agr-1")
    assert (first, second, deleted) == (0, 1, 2)
    assert decode_value(encode_value(DELETION_MARKER)) is None


def test_fresh_worker_and_restarted_worker_rebuild_everything(
    bootstrap_servers: str, topic_names: TopicNames, start_app: Callable[..., ControlApp]
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names, partitions=2)
    changes = _sample_changes(2000)
    _batched_write(bootstrap_servers, topic_names, changes)
    expected = _replay(changes)
    app_id = f"control-{uuid.uuid4().hex[:8]}"
    topics_before = _topics(bootstrap_servers)

    first = start_app(app_id, partitions=2)
    snapshot = first.wait_until_rebuilt(30)
    assert _as_state(snapshot) == expected
    assert sum(len(snapshot.applied_at[kind]) for kind in ControlKind) == 2000
    assert first.gap_fills == 0, "Faust missed records that the independent reader found"
    first.stop_thread()

    # While the worker is down the control plane moves on; the restart must catch up.
    later: list[Change] = [
        (ControlKind.CONSENT, "consent-late", {"withdrawn_at": None}),
        (ControlKind.PARTNER, "partner-00000", {"n": 0, "rev": 3}),
        (ControlKind.AGREEMENT, "agreement-00001", None),
    ]
    _batched_write(bootstrap_servers, topic_names, later)
    expected = _replay(later, expected)

    restarted = start_app(app_id, partitions=2)
    snapshot = restarted.wait_until_rebuilt(30)
    assert _as_state(snapshot) == expected
    assert restarted.gap_fills == 0

    # The independent read is the arbiter: a record the tables lack gets applied.
    _forget_on_loop(restarted, ControlKind.PARTNER, "partner-00000")
    snapshot = restarted.wait_until_rebuilt(30)
    assert _as_state(snapshot) == expected
    assert restarted.gap_fills == 1

    # Faust created no topic of its own (no leader topic, no changelog of its own).
    assert _topics(bootstrap_servers) == topics_before


def test_every_worker_holds_all_partitions_and_follows_changes(
    bootstrap_servers: str, topic_names: TopicNames, start_app: Callable[..., ControlApp]
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names, partitions=3)
    changes = _sample_changes(300)
    _batched_write(bootstrap_servers, topic_names, changes)
    expected = _replay(changes)
    every_partition = {
        (kind.topic(topic_names), partition) for kind in ControlKind for partition in range(3)
    }
    app_id = f"control-{uuid.uuid4().hex[:8]}"

    first = start_app(app_id, partitions=3)
    first.wait_until_rebuilt(30)
    # A second worker joins the group, so the first one goes through a rebalance.
    second = start_app(app_id, partitions=3)
    workers = [first, second]
    for worker in workers:
        snapshot = worker.wait_until_rebuilt(30)
        assert _as_state(snapshot) == expected
        assert set(snapshot.positions) == every_partition
        assert snapshot.version == len(changes), "a record was applied twice"
        assert worker.gap_fills == 0

    with control_writer(bootstrap_servers, topic_names) as writer:
        writer.put(ControlKind.PARTNER, "partner-warm-up", {"name": "connects the writer"})
        for round_ in range(3):
            key = f"consent-live-{round_}"
            written_at = time.monotonic()
            writer.put(ControlKind.CONSENT, key, {"round": round_})
            acknowledged_at = time.monotonic()
            for number, worker in enumerate(workers):
                _wait_for(_has_consent(worker, key), key)
                stamp = worker.snapshot().stamp(ControlKind.CONSENT, key)
                assert stamp is not None
                print(
                    f"worker {number}: {key} visible {_ms(stamp.applied_monotonic - written_at)}"
                    f" after the write, {_ms(stamp.applied_monotonic - acknowledged_at)}"
                    " after its acknowledgement"
                )


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def test_change_after_start_is_visible_with_a_higher_version(
    bootstrap_servers: str, topic_names: TopicNames, start_app: Callable[..., ControlApp]
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names)
    with control_writer(bootstrap_servers, topic_names) as writer:
        writer.put(ControlKind.CONSENT, "consent-1", {"purpose": "delivery", "withdrawn_at": None})
        app = start_app(f"control-{uuid.uuid4().hex[:8]}")
        before = app.wait_until_rebuilt(30)
        assert before.consents["consent-1"]["withdrawn_at"] is None

        seen: list[ControlSnapshot] = []
        app.subscribe(lambda snapshot, _changes: seen.append(snapshot))
        withdrawn_at = time.monotonic()
        writer.put(ControlKind.CONSENT, "consent-1", {"purpose": "delivery", "withdrawn_at": "now"})
        _wait_for(
            lambda: app.snapshot().consents["consent-1"]["withdrawn_at"] == "now", "withdrawal"
        )
        after = app.snapshot()
        assert after.version > before.version
        assert seen
        assert seen[-1].version == after.version
        stamp = after.stamp(ControlKind.CONSENT, "consent-1")
        assert stamp is not None
        assert not stamp.deleted
        print(f"withdrawal applied {_ms(stamp.applied_monotonic - withdrawn_at)} after the write")

        writer.delete(ControlKind.CONSENT, "consent-1")
        _wait_for(lambda: "consent-1" not in app.snapshot().consents, "deletion")
        deleted = app.snapshot()
        assert deleted.version > after.version
        stamp = deleted.stamp(ControlKind.CONSENT, "consent-1")
        assert stamp is not None
        assert stamp.deleted


def test_faust_runs_as_shipped_on_kafka_and_adjusted_on_tansu_only(
    broker_kind: str,
    bootstrap_servers: str,
    topic_names: TopicNames,
    start_app: Callable[..., ControlApp],
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names)
    app = start_app(f"control-{uuid.uuid4().hex[:8]}")
    app.wait_until_rebuilt(30)
    faust_app = app.faust_app
    consumer_thread = faust_app.consumer._thread  # type: ignore[attr-defined]
    coordinator = consumer_thread._consumer._coordinator
    if broker_kind == "kafka":
        # Stock Faust: its own app, transport and consumer thread, aiokafka's own
        # group coordinator and fetch wait.
        assert installed_adjustments(faust_app) == []
        assert type(faust_app) is faust.App
        assert type(faust_app.transport) is faust_aiokafka.Transport
        assert type(consumer_thread) is faust_aiokafka.AIOKafkaConsumerThread
        assert "_maybe_leave_group" not in vars(coordinator)
    else:
        assert installed_adjustments(faust_app) == [
            APP_CLASS,
            FETCH_WAIT,
            LEAVE_AT_GENERATION_ZERO,
        ]
    # Either way, consent changes reach the running app.
    with control_writer(bootstrap_servers, topic_names) as writer:
        written_at = time.monotonic()
        writer.put(ControlKind.CONSENT, "consent-live", {"withdrawn_at": None})
        _wait_for(_has_consent(app, "consent-live"), "consent-live")
        writer.put(ControlKind.CONSENT, "consent-live", {"withdrawn_at": "now"})
        _wait_for(
            lambda: app.snapshot().consents["consent-live"]["withdrawn_at"] == "now", "withdrawal"
        )
    stamp = app.snapshot().stamp(ControlKind.CONSENT, "consent-live")
    assert stamp is not None
    print(
        f"{broker_kind}: withdrawal applied {_ms(stamp.applied_monotonic - written_at)}"
        " after the first write"
    )
    assert app.gap_fills == 0


def _forget_on_loop(app: ControlApp, kind: ControlKind, key: str) -> None:
    """Make the app's state lose a record, as if Faust had never delivered it: the key
    is removed with a change older than any record in the topic."""
    done = threading.Event()
    stamp = app.snapshot().stamp(kind, key)
    assert stamp is not None
    tp = (stamp.topic, stamp.partition)

    def forget() -> None:
        app._ledger.apply_record(kind, key, None, tp, -1)
        done.set()

    assert app._loop is not None
    app._loop.call_soon_threadsafe(forget)
    assert done.wait(5)
    _wait_for(lambda: key not in app.snapshot().records(kind), f"removal of {key}")


_WORKER_SCRIPT = """
import sys
from pathlib import Path
from ecoshare.governance.control_app import create_control_app
from ecoshare.config.topics import TopicNames

app_id, bootstrap_servers, prefix, data_dir = sys.argv[1:5]
app = create_control_app(app_id, bootstrap_servers, TopicNames(prefix), data_dir=Path(data_dir))
app.run_forever(on_started=lambda _app: print("started", flush=True))
print("stopped", flush=True)
"""


def test_worker_process_stops_cleanly_on_sigterm(
    bootstrap_servers: str, topic_names: TopicNames, tmp_path: Path
) -> None:
    ensure_control_topics(bootstrap_servers, topic_names)
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _WORKER_SCRIPT,
            f"control-{uuid.uuid4().hex[:8]}",
            bootstrap_servers,
            topic_names.prefix,
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert child.stdout is not None
        first_line = _readline_within(child, 30)
        assert first_line == "started", first_line
        child.send_signal(signal.SIGTERM)
        out, err = child.communicate(timeout=20)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err[-2000:]
    assert out.strip().endswith("stopped")
    assert "Traceback" not in err, err[-2000:]


def _readline_within(child: subprocess.Popen[str], seconds: float) -> str:
    line: list[str] = []
    reader = threading.Thread(
        target=lambda: line.append(child.stdout.readline() if child.stdout else ""), daemon=True
    )
    reader.start()
    reader.join(seconds)
    return line[0].strip() if line else ""
