"""The registry, driven by Confluent's own clients and by raw HTTP, on the real broker.

Every test takes fresh uuid-named subjects, so tests share the session registry without
seeing each other's schemas.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient, SchemaRegistryError
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
from ecoshare.registry import RegistryProcess
from ecoshare.registry.errors import RegistryStartError

STORE_STATUS: dict[str, Any] = {
    "type": "record",
    "name": "StoreStatusChanged",
    "namespace": "ecoshare.events",
    "fields": [
        {"name": "location_id", "type": "string", "classification": "public"},
        {
            "name": "status",
            "type": {
                "type": "enum",
                "name": "Status",
                "symbols": ["OPEN", "CLOSED", "TEMPORARILY_CLOSED", "LIMITED"],
            },
            "classification": "public",
        },
        {"name": "contact_phone", "type": ["null", "string"], "default": None,
         "classification": "personal"},
    ],
}  # fmt: skip


def evolved(*extra_fields: dict[str, Any]) -> dict[str, Any]:
    return {**STORE_STATUS, "fields": [*STORE_STATUS["fields"], *extra_fields]}


def avro(document: dict[str, Any], *, indent: int | None = None) -> Schema:
    return Schema(json.dumps(document, indent=indent), "AVRO")


def document_of(schema: Schema) -> Any:
    assert schema.schema_str is not None
    return json.loads(schema.schema_str)


CITY_WITH_DEFAULT = {"name": "city", "type": "string", "default": "", "classification": "public"}
CITY_WITHOUT_DEFAULT = {"name": "city", "type": "string", "classification": "public"}


@pytest.fixture
def subject() -> str:
    return f"test-{uuid.uuid4().hex[:12]}-value"


@pytest.fixture
def new_client(registry_url: str) -> Callable[[], SchemaRegistryClient]:
    # Fresh clients, because a client's caches would otherwise answer for the registry.
    return lambda: SchemaRegistryClient({"url": registry_url})


@pytest.fixture
def client(new_client: Callable[[], SchemaRegistryClient]) -> SchemaRegistryClient:
    return new_client()


@pytest.fixture
def http(registry_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_url, timeout=10.0) as session:
        yield session


def registry_error(call: Any, *args: Any, **kwargs: Any) -> SchemaRegistryError:
    with pytest.raises(SchemaRegistryError) as caught:
        call(*args, **kwargs)
    return caught.value


# -- Confluent's client -------------------------------------------------------------------


def test_registering_again_returns_the_same_id_and_other_subjects_share_it(
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    subject: str,
) -> None:
    first = client.register_schema(subject, avro(STORE_STATUS))
    # A fresh client, so its cache cannot answer; whitespace and key order differ.
    again = new_client().register_schema(
        subject, Schema(json.dumps(STORE_STATUS, indent=2, sort_keys=True), "AVRO")
    )
    elsewhere = client.register_schema(f"other-{subject}", avro(STORE_STATUS))

    assert again == first
    assert elsewhere == first
    assert client.get_versions(subject) == [1]
    assert client.get_versions(f"other-{subject}") == [1]


def test_schemas_come_back_by_id_with_their_classification_attributes(
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    subject: str,
) -> None:
    schema_id = client.register_schema(subject, avro(STORE_STATUS, indent=4))

    fetched = document_of(new_client().get_schema(schema_id))

    assert fetched == STORE_STATUS
    assert {f["name"]: f["classification"] for f in fetched["fields"]} == {
        "location_id": "public",
        "status": "public",
        "contact_phone": "personal",
    }


def test_look_up_latest_and_versions(client: SchemaRegistryClient, subject: str) -> None:
    v1_id = client.register_schema(subject, avro(STORE_STATUS))
    v2_id = client.register_schema(subject, avro(evolved(CITY_WITH_DEFAULT)))

    looked_up = client.lookup_schema(subject, avro(STORE_STATUS, indent=2))
    latest = client.get_latest_version(subject)
    first = client.get_version(subject, 1)

    assert (looked_up.subject, looked_up.version, looked_up.schema_id) == (subject, 1, v1_id)
    assert (latest.version, latest.schema_id) == (2, v2_id)
    assert document_of(latest.schema) == evolved(CITY_WITH_DEFAULT)
    assert (first.version, first.schema_id) == (1, v1_id)
    assert client.get_versions(subject) == [1, 2]
    assert subject in client.get_subjects()
    assert [(v.subject, v.version) for v in client.get_schema_versions(v2_id)] == [(subject, 2)]


def test_an_incompatible_change_is_refused_with_409(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, avro(STORE_STATUS))
    breaking = avro(evolved(CITY_WITHOUT_DEFAULT))

    assert client.test_compatibility(subject, breaking) is False
    assert client.test_compatibility(subject, avro(evolved(CITY_WITH_DEFAULT))) is True
    refused = registry_error(client.register_schema, subject, breaking)

    assert refused.http_status_code == 409
    assert refused.error_code == 409
    assert "city" in refused.error_message
    assert client.get_versions(subject) == [1]


def test_the_subject_level_governs_registration(client: SchemaRegistryClient, subject: str) -> None:
    client.register_schema(subject, avro(STORE_STATUS))
    breaking = avro(evolved(CITY_WITHOUT_DEFAULT))

    client.set_compatibility(subject, "NONE")
    assert client.get_compatibility(subject) == "NONE"
    assert client.test_compatibility(subject, breaking) is True
    client.register_schema(subject, breaking)

    assert client.get_versions(subject) == [1, 2]


def test_forward_level_refuses_removing_a_required_field(
    client: SchemaRegistryClient, subject: str
) -> None:
    client.set_compatibility(subject, "FORWARD")
    client.register_schema(subject, avro(STORE_STATUS))
    without_status = {**STORE_STATUS, "fields": [STORE_STATUS["fields"][0]]}

    refused = registry_error(client.register_schema, subject, avro(without_status))

    assert refused.http_status_code == 409


def test_soft_then_hard_delete(
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    subject: str,
) -> None:
    schema_id = client.register_schema(subject, avro(STORE_STATUS))
    client.register_schema(subject, avro(evolved(CITY_WITH_DEFAULT)))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.delete_subject(subject) == [1]
    assert registry_error(client.get_versions, subject).error_code == 40401
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    # Readers of data written before the deletion can still resolve the id.
    assert new_client().get_schema(schema_id).schema_str
    assert registry_error(client.delete_subject, subject).error_code == 40404

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    # Registering after a hard delete starts the subject afresh with the same global id.
    assert client.register_schema(subject, avro(STORE_STATUS)) == schema_id
    assert client.get_versions(subject) == [1]


def test_hard_delete_needs_a_soft_delete_first(client: SchemaRegistryClient, subject: str) -> None:
    client.register_schema(subject, avro(STORE_STATUS))
    assert registry_error(client.delete_subject, subject, permanent=True).error_code == 40405
    assert registry_error(client.delete_version, subject, 1, permanent=True).error_code == 40407


def test_avro_events_round_trip_through_the_broker(
    registry_url: str, bootstrap_servers: str, topic_prefix: str
) -> None:
    topic = f"{topic_prefix}ingress.StoreStatusChanged"
    ensure_topics(bootstrap_servers, [TopicSpec(topic)])
    event = {"location_id": "NL-1012-AB", "status": "TEMPORARILY_CLOSED", "contact_phone": None}
    context = SerializationContext(topic, MessageField.VALUE)
    serialize = AvroSerializer(
        SchemaRegistryClient({"url": registry_url}), json.dumps(STORE_STATUS)
    )
    producer = Producer({"bootstrap.servers": bootstrap_servers})
    producer.produce(topic, value=serialize(event, context))
    assert producer.flush(10) == 0

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": topic, "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    try:
        message = consumer.poll(15)
    finally:
        consumer.close()
    assert message is not None
    assert message.error() is None
    # A separate client, as a subscriber elsewhere would have.
    deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}))

    assert deserialize(message.value(), context) == event


# -- raw HTTP -----------------------------------------------------------------------------


def test_root_and_schema_types(http: httpx.Client) -> None:
    assert http.get("/").json() == {}
    assert http.get("/schemas/types").json() == ["AVRO"]


def test_not_found_codes(http: httpx.Client, subject: str) -> None:
    body = {"schema": json.dumps(STORE_STATUS)}
    missing_subject = http.get(f"/subjects/{subject}/versions")
    assert (missing_subject.status_code, missing_subject.json()) == (
        404,
        {"error_code": 40401, "message": f"Subject '{subject}' not found."},
    )
    assert http.post(f"/subjects/{subject}", json=body).json()["error_code"] == 40401

    http.post(f"/subjects/{subject}/versions", json=body).raise_for_status()
    other = {"schema": json.dumps(evolved(CITY_WITH_DEFAULT))}
    missing_version = http.get(f"/subjects/{subject}/versions/7")
    missing_schema = http.post(f"/subjects/{subject}", json=other)
    missing_id = http.get("/schemas/ids/987654321")

    assert (missing_version.status_code, missing_version.json()["error_code"]) == (404, 40402)
    assert (missing_schema.status_code, missing_schema.json()["error_code"]) == (404, 40403)
    assert (missing_id.status_code, missing_id.json()["error_code"]) == (404, 40403)


@pytest.mark.parametrize(
    ("body", "status", "error_code"),
    [
        ({"schema": '{"type": "record", "name": "NoFields"}'}, 422, 42201),
        ({"schema": "definitely not json"}, 422, 42201),
        ({"schema": json.dumps(STORE_STATUS), "schemaType": "PROTOBUF"}, 422, 42201),
        ({"schemaType": "AVRO"}, 422, 42201),
        ({"schema": {"type": "string"}}, 422, 42201),
        ([1, 2, 3], 400, 400),
    ],
)
def test_bad_registrations_get_json_errors(
    http: httpx.Client, subject: str, body: Any, status: int, error_code: int
) -> None:
    answer = http.post(f"/subjects/{subject}/versions", json=body)
    assert answer.status_code == status
    assert answer.json()["error_code"] == error_code
    assert answer.json()["message"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/subjects/{subject}/versions"),
        ("POST", "/subjects/{subject}"),
        ("POST", "/compatibility/subjects/{subject}/versions/latest"),
        ("PUT", "/config/{subject}"),
        ("PUT", "/config"),
    ],
)
def test_malformed_json_is_a_4xx_json_answer_never_a_500(
    http: httpx.Client, subject: str, method: str, path: str
) -> None:
    answer = http.request(
        method,
        path.format(subject=subject),
        content=b'{"schema": "oops',
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
    )
    assert 400 <= answer.status_code < 500
    assert answer.json()["error_code"] == 400
    assert "JSON" in answer.json()["message"]


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.schemaregistry.v1+json",
        "application/vnd.schemaregistry+json",
        "application/json; charset=utf-8",
    ],
)
def test_confluent_content_types_are_accepted(
    http: httpx.Client, subject: str, content_type: str
) -> None:
    answer = http.post(
        f"/subjects/{subject}/versions",
        content=json.dumps({"schema": json.dumps(STORE_STATUS)}),
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 200
    assert isinstance(answer.json()["id"], int)


@pytest.mark.parametrize("version", ["0", "abc", "-2", "2147483648"])
def test_invalid_versions_are_42202(http: httpx.Client, subject: str, version: str) -> None:
    answer = http.get(f"/subjects/{subject}/versions/{version}")
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42202)


def test_config_endpoints(http: httpx.Client, subject: str) -> None:
    # The session registry is shared, so its global level is read here, never changed.
    global_level = http.get("/config").json()
    assert set(global_level) == {"compatibilityLevel"}
    assert http.get(f"/config/{subject}").json()["error_code"] == 40408
    assert http.get(f"/config/{subject}?defaultToGlobal=true").json() == global_level
    invalid = http.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"})
    assert (invalid.status_code, invalid.json()["error_code"]) == (422, 42203)

    assert http.put(f"/config/{subject}", json={"compatibility": "full_transitive"}).json() == {
        "compatibility": "FULL_TRANSITIVE"
    }
    assert http.get(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert http.delete(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert http.get(f"/config/{subject}").status_code == 404


def test_verbose_compatibility_explains_and_raw_schema_endpoints(
    http: httpx.Client, subject: str
) -> None:
    registered = http.post(
        f"/subjects/{subject}/versions", json={"schema": json.dumps(STORE_STATUS)}
    ).json()
    breaking = {"schema": json.dumps(evolved(CITY_WITHOUT_DEFAULT))}

    verdict = http.post(
        f"/compatibility/subjects/{subject}/versions/latest?verbose=true", json=breaking
    ).json()
    raw_by_version = http.get(f"/subjects/{subject}/versions/1/schema").json()
    raw_by_id = http.get(f"/schemas/ids/{registered['id']}/schema").json()

    assert verdict["is_compatible"] is False
    assert any("city" in message for message in verdict["messages"])
    assert raw_by_version == raw_by_id == STORE_STATUS


def test_unknown_routes_answer_json(http: httpx.Client) -> None:
    answer = http.get("/no/such/route")
    assert answer.status_code == 404
    assert answer.json()["error_code"] == 404


def test_metrics_label_route_templates_not_raw_paths(http: httpx.Client, subject: str) -> None:
    http.get(f"/subjects/{subject}/versions")
    text = http.get("/metrics").text

    assert 'route="/subjects/{subject}/versions"' in text
    assert subject not in text
    assert "ecoshare_registry_requests_total{" in text
    assert "ecoshare_registry_request_duration_seconds_bucket{" in text
    assert "ecoshare_registry_schemas " in text
    assert 'ecoshare_build_info{service="registry"' in text


# -- several instances on one topic -------------------------------------------------------


def test_instances_on_one_topic_serve_the_same_ids_and_survive_restarts(
    bootstrap_servers: str, tmp_path: Path, subject: str
) -> None:
    topic = f"_schemas-{uuid.uuid4().hex[:8]}"

    def instance(name: str) -> RegistryProcess:
        return RegistryProcess(
            bootstrap_servers=bootstrap_servers, topic=topic, log_path=tmp_path / f"{name}.log"
        )

    with instance("first") as first:
        first_client = SchemaRegistryClient({"url": first.url})
        v1_id = first_client.register_schema(subject, avro(STORE_STATUS))
        first_client.set_compatibility(subject, "FULL")
        first_client.set_compatibility(level="FORWARD_TRANSITIVE")
        with instance("second") as second:
            second_client = SchemaRegistryClient({"url": second.url})
            assert second_client.get_schema(v1_id).schema_str == json.dumps(
                STORE_STATUS, separators=(",", ":")
            )
            assert second_client.get_compatibility(subject) == "FULL"
            assert second_client.get_compatibility() == "FORWARD_TRANSITIVE"
            # A write through the second instance is seen by the first, and ids continue.
            v2_id = second_client.register_schema(subject, avro(evolved(CITY_WITH_DEFAULT)))
            assert v2_id != v1_id
            assert first_client.get_version(subject, 2).schema_id == v2_id
            assert first_client.register_schema(f"other-{subject}", avro(STORE_STATUS)) == v1_id

    with instance("restarted") as restarted:
        restarted_client = SchemaRegistryClient({"url": restarted.url})
        assert restarted_client.get_versions(subject) == [1, 2]
        assert restarted_client.get_latest_version(subject).schema_id == v2_id
        assert restarted_client.lookup_schema(subject, avro(STORE_STATUS)).schema_id == v1_id
        assert restarted_client.get_compatibility(subject) == "FULL"
        assert restarted_client.register_schema(subject, avro(STORE_STATUS)) == v1_id
        reset = httpx.delete(f"{restarted.url}/config")
        assert reset.json() == {"compatibilityLevel": "FORWARD_TRANSITIVE"}
        assert restarted_client.get_compatibility() == "BACKWARD"


def test_concurrent_registrations_through_two_instances_stay_consistent(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    topic = f"_schemas-{uuid.uuid4().hex[:8]}"
    subjects = [f"race-{uuid.uuid4().hex[:8]}-{n}" for n in range(2)]
    # Each schema adds one defaulted field to the previous, so every order is compatible.
    schemas = [
        json.dumps(evolved(*({"name": f"f{j}", "type": "int", "default": 0} for j in range(i))))
        for i in range(16)
    ]
    with (
        RegistryProcess(
            bootstrap_servers=bootstrap_servers, topic=topic, log_path=tmp_path / "a.log"
        ) as first,
        RegistryProcess(
            bootstrap_servers=bootstrap_servers, topic=topic, log_path=tmp_path / "b.log"
        ) as second,
    ):
        sessions = [httpx.Client(base_url=first.url), httpx.Client(base_url=second.url)]

        def register(i: int) -> tuple[int, str, dict[str, Any]]:
            subject = subjects[i % len(subjects)]
            answer = sessions[i % 2].post(
                f"/subjects/{subject}/versions", json={"schema": schemas[i]}
            )
            answer.raise_for_status()
            return i, subject, answer.json()

        with ThreadPoolExecutor(max_workers=8) as pool:
            answers = list(pool.map(register, range(len(schemas))))

        for session in sessions:
            for subject in subjects:
                assert session.get(f"/subjects/{subject}/versions").json() == list(
                    range(1, len(schemas) // len(subjects) + 1)
                )
            for i, subject, answer in answers:
                # Every answer a client got is what both instances serve.
                served = session.get(f"/subjects/{subject}/versions/{answer['version']}").json()
                assert served["id"] == answer["id"]
                assert json.loads(served["schema"]) == json.loads(schemas[i])
            session.close()


def test_a_registry_that_cannot_start_says_so_and_names_its_log(
    bootstrap_servers: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "port-taken.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        registry = RegistryProcess(
            bootstrap_servers=bootstrap_servers,
            port=taken.getsockname()[1],
            topic=f"_schemas-{uuid.uuid4().hex[:8]}",
            log_path=log_path,
        )
        with pytest.raises(RegistryStartError, match="exited with code") as caught:
            registry.start()
    assert str(log_path) in str(caught.value)
