"""The demo's adapters for the use cases' ports: the platform's one control-record writer,
and a platform state read once from the control topics and kept current with the demo's
own writes (the demo is the only writer while it runs)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from ecoshare.adapters.kafka.control_records import ControlRecordWriter, read_valid_records
from ecoshare.config.topics import TopicNames
from ecoshare.domain.agreements import Agreement
from ecoshare.domain.consent import ConsentRecord
from ecoshare.domain.credentials import ApiKeyRecord
from ecoshare.domain.partners import Partner
from ecoshare.governance.control_plane import ControlKind, control_writer

_MODELS: dict[ControlKind, type[BaseModel]] = {
    ControlKind.PARTNER: Partner,
    ControlKind.AGREEMENT: Agreement,
    ControlKind.CONSENT: ConsentRecord,
}


class DemoControl:
    """Writes control records and answers what the platform holds, as the use cases ask.

    ``write`` goes through :func:`~ecoshare.governance.control_plane.control_writer`
    (acknowledged) and then updates the state the next use case reads.
    """

    def __init__(self, writer: ControlRecordWriter, records: Mapping[str, dict[str, Any]]) -> None:
        self._writer = writer
        self._records: dict[str, dict[str, Any]] = {
            kind.value: dict(records.get(kind.value, {})) for kind in ControlKind
        }

    @classmethod
    def open(cls, bootstrap_servers: str, names: TopicNames) -> DemoControl:
        """The writer, and the control topics' valid records as they stand now."""
        topics = {kind.topic(names): kind for kind in ControlKind}
        folded = read_valid_records(
            bootstrap_servers, {topic: _MODELS[kind] for topic, kind in topics.items()}
        )
        records = {topics[topic].value: dict(found.valid) for topic, found in folded.items()}
        return cls(control_writer(bootstrap_servers, names), records)

    def write(self, kind: str, key: str, value: BaseModel | None) -> None:
        self._writer.write(kind, key, value)
        if value is None:
            self._records[kind].pop(key, None)
        else:
            self._records[kind][key] = value

    def partners(self) -> dict[str, Partner]:
        return dict(self._records[ControlKind.PARTNER.value])

    def agreements(self) -> dict[str, Agreement]:
        return dict(self._records[ControlKind.AGREEMENT.value])

    def consents(self) -> dict[str, ConsentRecord]:
        return dict(self._records[ControlKind.CONSENT.value])

    def api_keys(self) -> dict[str, ApiKeyRecord]:
        return {}  # the demo issues no API keys

    def close(self) -> None:
        self._writer.close()

    def __enter__(self) -> DemoControl:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
