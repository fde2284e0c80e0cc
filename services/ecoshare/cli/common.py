"""What every ``ecoshare`` command shares: settings, output, and finding the platform."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from ecoshare.application.bootstrap import load_settings
from ecoshare.config.endpoints import read_endpoints
from ecoshare.config.quiet import quiet_third_party_warnings as quiet_third_party_warnings
from ecoshare.config.settings import Settings
from ecoshare.config.topics import TopicNames
from ecoshare.errors import ConfigurationError, EcoshareError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ecoshare.adapters.kafka.control_records import ControlRecordWriter
    from ecoshare.domain.agreements import Agreement
    from ecoshare.domain.consent import ConsentRecord
    from ecoshare.domain.credentials import ApiKeyRecord
    from ecoshare.domain.partners import Partner

console = Console()
errors = Console(stderr=True)
OutputOption = Annotated[
    str, typer.Option("--output", "-o", help="table (for people) or json (for scripts)")
]


class InputError(ConfigurationError):
    """The user's input (an argument, a file) is wrong: exit code 2."""


class NotFoundError(EcoshareError):
    """The named partner, agreement, consent or event does not exist: exit code 1."""


def settings() -> Settings:
    return load_settings()


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value)
    return str(value)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, default=_json_default) + "\n")


def json_line(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def check_output(output: str) -> None:
    if output not in ("table", "json"):
        raise InputError(f"--output must be 'table' or 'json', not {output!r}")


@dataclass(frozen=True)
class Endpoints:
    """Where the running platform is: from ECOSHARE_* settings or ``endpoints.json``."""

    bootstrap_servers: str
    schema_registry_url: str
    names: TopicNames
    api_url: str | None = None
    metrics_urls: dict[str, str] = field(default_factory=dict)


def endpoints(base: Settings, *, check_broker: bool = True) -> Endpoints:
    """The platform to talk to; EcoshareError when none is running or reachable."""
    if base.bootstrap_servers:
        found = Endpoints(
            bootstrap_servers=base.bootstrap_servers,
            schema_registry_url=base.schema_registry_url or "",
            names=TopicNames(base.topic_prefix),
            api_url=os.environ.get("ECOSHARE_API_URL"),
        )
    else:
        data = read_endpoints(base.state_dir)
        found = Endpoints(
            bootstrap_servers=str(data["bootstrap_servers"]),
            schema_registry_url=str(data.get("schema_registry_url") or ""),
            names=TopicNames(str(data.get("topic_prefix", ""))),
            api_url=data.get("api_url"),
            metrics_urls=dict(data.get("metrics_urls") or {}),
        )
    if check_broker:
        from ecoshare.adapters.kafka.admin import wait_for_cluster

        wait_for_cluster(found.bootstrap_servers, timeout_seconds=5.0)
    return found


@dataclass(frozen=True)
class ControlState:
    """Partners, agreements and consents as the control topics hold them now."""

    partners: dict[str, Partner]
    agreements: dict[str, Agreement]
    consents: dict[str, ConsentRecord]
    invalid: list[str]


def read_state(where: Endpoints) -> ControlState:
    """Read the control topics to their end, each key's last valid record as its model.

    Invalid records follow the platform's one rule (see
    :mod:`ecoshare.adapters.kafka.control_records`): the previous valid record stays,
    and the key is listed in ``invalid`` while its latest record is the invalid one.
    """
    from ecoshare.adapters.kafka.control_records import read_valid_records
    from ecoshare.adapters.kafka.errors import KafkaIoError
    from ecoshare.domain.agreements import Agreement
    from ecoshare.domain.consent import ConsentRecord
    from ecoshare.domain.partners import Partner
    from ecoshare.governance.control_plane import ControlKind

    types: dict[ControlKind, type[BaseModel]] = {
        ControlKind.PARTNER: Partner,
        ControlKind.AGREEMENT: Agreement,
        ControlKind.CONSENT: ConsentRecord,
    }
    topics = {kind.topic(where.names): kind for kind in types}
    try:
        folded = read_valid_records(
            where.bootstrap_servers, {topic: types[kind] for topic, kind in topics.items()}
        )
    except KafkaIoError as exc:
        raise EcoshareError(f"could not read the control topics: {exc}") from exc
    invalid = [
        f"{topics[topic]} {key!r}: {reason}"
        for topic, records in folded.items()
        for key, reason in sorted(records.rejected.items())
    ]
    models: dict[ControlKind, dict[str, Any]] = {
        topics[topic]: dict(records.valid) for topic, records in folded.items()
    }
    return ControlState(
        partners=models[ControlKind.PARTNER],
        agreements=models[ControlKind.AGREEMENT],
        consents=models[ControlKind.CONSENT],
        invalid=invalid,
    )


@dataclass(frozen=True)
class GovernanceSource:
    """Partners and agreements, from a governance file or from the running platform."""

    partners: dict[str, Partner]
    agreements: list[Agreement]
    names: TopicNames
    where: Endpoints | None  # None when they came from a file


def governance_source(base: Settings, file: Path | None) -> GovernanceSource:
    """The governance file's partners and agreements when ``file`` is given (no platform
    needed), else the running platform's."""
    if file is not None:
        from ecoshare.config.governance_file import load_governance_file

        # A bad file raises GovernanceFileError (exit 2) naming the file, path and problem.
        document = load_governance_file(file).document
        return GovernanceSource(
            partners={item.partner_id: item for item in document.partners},
            agreements=list(document.agreements),
            names=TopicNames(base.topic_prefix),
            where=None,
        )
    where = endpoints(base)
    state = read_state(where)
    return GovernanceSource(
        partners=state.partners,
        agreements=list(state.agreements.values()),
        names=where.names,
        where=where,
    )


class CliPlatformState:
    """The use cases' view of the platform, read from the topics on first use.

    Control records are read once per command (:func:`read_state`); API key records only
    when a use case asks for them, since reading them first creates their topic.
    """

    def __init__(self, where: Endpoints) -> None:
        self._where = where
        self._control: ControlState | None = None
        self._keys: dict[str, ApiKeyRecord] | None = None

    @property
    def control(self) -> ControlState:
        if self._control is None:
            self._control = read_state(self._where)
        return self._control

    def partners(self) -> dict[str, Partner]:
        return self.control.partners

    def agreements(self) -> dict[str, Agreement]:
        return self.control.agreements

    def consents(self) -> dict[str, ConsentRecord]:
        return self.control.consents

    def api_keys(self) -> dict[str, ApiKeyRecord]:
        if self._keys is None:
            self._keys = read_key_records(self._where)
        return self._keys


def keys_topic(where: Endpoints) -> str:
    """The API keys' topic, created when missing (a platform may not have served one)."""
    from ecoshare.adapters.kafka.admin import TopicSpec, ensure_topics
    from ecoshare.config.topics import api_keys_topic

    topic = api_keys_topic(where.names)
    ensure_topics(where.bootstrap_servers, [TopicSpec.compacted(topic)])
    return topic


def read_key_records(where: Endpoints) -> dict[str, ApiKeyRecord]:
    """Every valid API key record; invalid ones are named on stderr and left out."""
    from ecoshare.adapters.kafka.control_records import read_valid_records
    from ecoshare.domain.credentials import ApiKeyRecord

    topic = keys_topic(where)
    folded = read_valid_records(where.bootstrap_servers, {topic: ApiKeyRecord})[topic]
    for key, reason in sorted(folded.rejected.items()):
        errors.print(f"warning: invalid API key record {key!r} ignored ({reason})")
    return dict(folded.valid)


def record_writer(where: Endpoints) -> ControlRecordWriter:
    """The use cases' writer of partner, agreement, consent and API key records.

    The API keys' topic is created on the first key written (a platform may not have
    served one); the producer opens on the first write.
    """
    from ecoshare.adapters.kafka.control_records import ControlRecordWriter
    from ecoshare.governance.control_plane import ControlKind

    topics: dict[str, str] = {}

    def topic_of(kind: str) -> str:
        if kind not in topics:
            topics[kind] = (
                keys_topic(where) if kind == "api_key" else ControlKind(kind).topic(where.names)
            )
        return topics[kind]

    return ControlRecordWriter(where.bootstrap_servers, topic_of)


def read_input(path: Path) -> str:
    """The text of ``path`` (``-`` is standard input); InputError when unreadable."""
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from exc
