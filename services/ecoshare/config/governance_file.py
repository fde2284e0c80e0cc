"""The declarative governance file (YAML): partners and agreements, applied as code."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecoshare.domain.agreements import Agreement
from ecoshare.domain.partners import Partner
from ecoshare.errors import ConfigurationError


class GovernanceFileError(ConfigurationError):
    """A governance file is unreadable or invalid; the message names file and path."""


class GovernanceDocument(BaseModel):
    """The whole file: every partner and every agreement of the ecosystem."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    partners: list[Partner] = Field(default_factory=list)
    agreements: list[Agreement] = Field(default_factory=list)


@dataclass(frozen=True)
class GovernanceFile:
    path: Path
    document: GovernanceDocument


def _location(parts: tuple[Any, ...]) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text or "(document)"


def load_governance_file(path: Path) -> GovernanceFile:
    """Parse and validate ``path``; GovernanceFileError naming file, path and problem."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise GovernanceFileError(f"{path}: cannot read: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise GovernanceFileError(f"{path}: not valid YAML: {exc}") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise GovernanceFileError(
            f"{path}: the document must be a mapping with partners/agreements"
        )
    try:
        document = GovernanceDocument.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{path}: {_location(tuple(error['loc']))}: {error['msg']}" for error in exc.errors()
        ]
        raise GovernanceFileError("\n".join(problems)) from exc
    seen: set[str] = set()
    for index, partner in enumerate(document.partners):
        if partner.partner_id in seen:
            raise GovernanceFileError(
                f"{path}: partners[{index}].partner_id: duplicate id {partner.partner_id!r}"
            )
        seen.add(partner.partner_id)
    agreement_ids: set[str] = set()
    for index, agreement in enumerate(document.agreements):
        if agreement.agreement_id in agreement_ids:
            raise GovernanceFileError(
                f"{path}: agreements[{index}].agreement_id: duplicate id {agreement.agreement_id!r}"
            )
        agreement_ids.add(agreement.agreement_id)
        if agreement.subscriber not in seen:
            raise GovernanceFileError(
                f"{path}: agreements[{index}].subscriber: unknown partner {agreement.subscriber!r}"
            )
    return GovernanceFile(path, document)
