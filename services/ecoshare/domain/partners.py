"""Partners of the ecosystem and their roles."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt

PARTNER_ID_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
PartnerId = Annotated[str, Field(pattern=PARTNER_ID_PATTERN)]
"""A partner id: 1-63 lowercase letters, digits and hyphens, not starting with a hyphen.

Partner ids appear in topic names and registry subjects, hence the narrow alphabet.
"""


class Role(StrEnum):
    """What a partner may do on the platform."""

    PUBLISHER = "publisher"
    SUBSCRIBER = "subscriber"
    OPERATOR = "operator"


class Partner(BaseModel):
    """A company taking part in the ecosystem.

    A disabled partner neither publishes nor receives anything. ``key_generation``
    (>= 1) is raised to revoke the partner's older credentials.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    partner_id: PartnerId
    name: Annotated[str, Field(min_length=1)]
    roles: frozenset[Role]
    contact_email: str | None = None
    enabled: StrictBool = True
    key_generation: Annotated[StrictInt, Field(ge=1)] = 1

    def has_role(self, role: Role) -> bool:
        """True when the partner holds ``role``."""
        return role in self.roles

    def to_avro(self) -> dict[str, Any]:
        """The ``nl.ecoshare.control.Partner`` Avro dict; roles sorted for stable bytes."""
        return {
            "partner_id": self.partner_id,
            "name": self.name,
            "roles": sorted(role.value for role in self.roles),
            "contact_email": self.contact_email,
            "enabled": self.enabled,
            "key_generation": self.key_generation,
        }

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Validate a ``Partner`` Avro dict into the model."""
        return cls.model_validate(dict(record))
