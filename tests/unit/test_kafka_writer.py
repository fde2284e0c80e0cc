"""The acknowledged writer against an in-memory producer, and the client configuration."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from ecoshare.adapters.kafka.config import (
    acknowledged_writer_config,
    reader_config,
    worker_consumer_config,
)
from ecoshare.adapters.kafka.control_records import (
    ControlRecordWriter,
    decode_value,
    delete_record,
    put_record,
)
from ecoshare.adapters.kafka.errors import (
    AcknowledgementTimeoutError,
    ControlRecordError,
    WriteNotAcknowledgedError,
)
from ecoshare.adapters.kafka.writer import AcknowledgedWriter, Written
from tests.unit.fake_kafka_for_adapters import FakeProducer


def _writer(**fake: Any) -> tuple[AcknowledgedWriter, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory(config: dict[str, Any]) -> FakeProducer:
        made.append(FakeProducer(config, **fake))
        return made[-1]

    return AcknowledgedWriter("fake:9092", timeout_seconds=0.1, producer_factory=factory), made


def test_a_write_returns_where_the_cluster_acknowledged_it() -> None:
    writer, made = _writer()
    assert writer.write("t", b"k", b"v") == Written("t", 0, 0)
    assert writer.write("t", b"k", None, partition=3) == Written("t", 3, 1)
    assert [record["value"] for record in made[0].produced] == [b"v", None]
    assert made[0].produced[1]["partition"] == 3


def test_a_refused_record_is_a_named_error_not_a_timeout() -> None:
    writer, _ = _writer(outcome="error")
    with pytest.raises(WriteNotAcknowledgedError, match="could not write") as exc:
        writer.write("t", b"k", b"v")
    assert not isinstance(exc.value, AcknowledgementTimeoutError)


def test_no_report_in_time_is_an_acknowledgement_timeout() -> None:
    writer, _ = _writer(outcome="silent")
    with pytest.raises(AcknowledgementTimeoutError, match="not acknowledged"):
        writer.write("t", b"k", b"v")


def test_a_full_client_queue_is_translated() -> None:
    writer, _ = _writer(refuse_produce=True)
    with pytest.raises(WriteNotAcknowledgedError, match="queue full"):
        writer.write("t", b"k", b"v")


def test_json_records_go_through_the_writer_with_the_deletion_marker() -> None:
    writer, made = _writer()
    put_record(writer, "shops", "s1", {"stores": 2})
    delete_record(writer, "shops", "s1")
    assert [(r["key"], r["value"]) for r in made[0].produced] == [
        (b"s1", b'{"stores":2}'),
        (b"s1", b'{"deleted":true}'),
    ]


def test_the_writer_sends_each_record_alone_and_waits_for_every_replica() -> None:
    config = acknowledged_writer_config("b:9092")
    assert config["acks"] == "all"
    assert config["enable.idempotence"] is True
    assert (config["linger.ms"], config["batch.num.messages"]) == (0, 1)
    assert config["partitioner"] == "murmur2_random"


def test_readers_report_partition_ends_and_read_committed_only_when_asked() -> None:
    governed = reader_config("b:9092", "audit", read_committed=True)
    control = reader_config("b:9092", "state", read_committed=False)
    assert governed["enable.partition.eof"] is True
    assert governed["enable.auto.commit"] is False
    assert governed["isolation.level"] == "read_committed"
    assert control["isolation.level"] == "read_uncommitted"
    assert governed["group.id"] != reader_config("b:9092", "audit", read_committed=True)["group.id"]


def test_the_worker_consumer_lets_apache_kafka_assign_and_others_stay_classic() -> None:
    classic = worker_consumer_config("b:9092", "g", session_timeout_ms=6000, broker_assigns=False)
    kip848 = worker_consumer_config("b:9092", "g", session_timeout_ms=6000, broker_assigns=True)
    assert classic["partition.assignment.strategy"] == "cooperative-sticky"
    assert classic["heartbeat.interval.ms"] == 1000
    assert "group.protocol" not in classic
    assert kip848["group.protocol"] == "consumer"
    assert kip848["group.remote.assignor"] == "range"
    # Under KIP-848 the session belongs to the broker and a static id would fence a
    # replacement: neither is set by the client.
    assert "session.timeout.ms" not in kip848
    assert "group.instance.id" not in kip848 and "group.instance.id" not in classic
    assert classic["isolation.level"] == kip848["isolation.level"] == "read_committed"


def test_headers_travel_with_the_record_and_are_left_out_when_there_are_none() -> None:
    writer, made = _writer()
    writer.write("dead", b"wh_1", b"{}", headers=[("ecoshare-webhook-id", b"wh_1")])
    writer.write("dead", b"wh_1", b"{}")
    assert made[0].produced[0]["headers"] == [("ecoshare-webhook-id", b"wh_1")]
    assert "headers" not in made[0].produced[1]


# -- the one control-record writer ------------------------------------------------------


class _Shop(BaseModel):
    shop_id: str
    stores: int


def test_the_control_record_writer_addresses_records_by_kind() -> None:
    writer, made = _writer()
    seen: list[Written] = []
    records = ControlRecordWriter(
        "fake:9092", {"shop": "shops"}, writer=writer, on_written=seen.append
    )
    records.write("shop", "s1", _Shop(shop_id="s1", stores=2))
    assert records.put("shop", "s2", {"shop_id": "s2", "stores": "many"}) == 1
    assert records.delete("shop", "s1") == 2
    records.write("shop", "s2", None)
    produced = made[0].produced
    assert [(r["topic"], r["key"]) for r in produced] == [("shops", b"s1"), ("shops", b"s2")] * 2
    assert decode_value(produced[0]["value"]) == {"shop_id": "s1", "stores": 2}
    assert [decode_value(r["value"]) for r in produced[2:]] == [None, None]
    assert [written.offset for written in seen] == [0, 1, 2, 3]
    with pytest.raises(ControlRecordError, match="use delete"):
        records.put("shop", "s3", {"deleted": True})
    with pytest.raises(KeyError):
        records.write("partner", "p1", None)  # a kind without a topic
    records.close()  # a shared writer stays open for its owner
    assert writer.write("t", b"k", b"v").offset == 4


def test_an_unacknowledged_control_record_names_its_kind_and_key() -> None:
    writer, made = _writer(outcome="error")
    records = ControlRecordWriter("fake:9092", lambda kind: f"{kind}s", writer=writer)
    with pytest.raises(WriteNotAcknowledgedError, match="consent 'c1': could not write"):
        records.write("consent", "c1", _Shop(shop_id="c1", stores=1))
    assert made[0].produced[0]["topic"] == "consents"
