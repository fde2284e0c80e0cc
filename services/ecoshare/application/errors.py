"""Why a use case refused: named errors the API maps to HTTP and the CLI to exit codes.

Each carries the facts an entry point needs to word its own message; ``str()`` is a
plain default.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ecoshare.errors import EcoshareError


class UseCaseError(EcoshareError):
    """Base of the refusals of :mod:`ecoshare.application`."""


class UnknownPartnerError(UseCaseError):
    """The named partner does not exist."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(f"no partner {partner_id!r}")
        self.partner_id = partner_id


class PartnerExistsError(UseCaseError):
    """A partner with this id is registered already."""

    def __init__(self, partner_id: str) -> None:
        super().__init__(f"partner {partner_id!r} exists already")
        self.partner_id = partner_id


class UnknownApiKeyError(UseCaseError):
    """No such API key (or none of that id belongs to the named partner)."""

    def __init__(self, key_id: str, partner_id: str | None = None) -> None:
        super().__init__(
            f"no API key {key_id!r}"
            if partner_id is None
            else f"partner {partner_id!r} has no API key {key_id!r}"
        )
        self.key_id = key_id
        self.partner_id = partner_id


class UnknownConsentError(UseCaseError):
    """No consent of this id."""

    def __init__(self, consent_id: str) -> None:
        super().__init__(f"no consent {consent_id!r}")
        self.consent_id = consent_id


class UnknownControllerError(UseCaseError):
    """A consent names a controller that is no partner."""

    def __init__(self, controller: str) -> None:
        super().__init__(f"controller {controller!r} is not a partner")
        self.controller = controller


class ConsentOfAnotherControllerError(UseCaseError):
    """The consent id is taken by a consent another controller recorded."""

    def __init__(self, consent_id: str) -> None:
        super().__init__(f"consent {consent_id!r} belongs to another controller")
        self.consent_id = consent_id


@dataclass(frozen=True, slots=True)
class FieldError:
    """One invalid field: its dotted path (empty for the whole record) and why."""

    field: str
    message: str


class InvalidConsentError(UseCaseError):
    """The consent's fields do not make a valid consent record."""

    def __init__(self, problems: Sequence[FieldError]) -> None:
        super().__init__(
            "; ".join(f"{problem.field or 'value'}: {problem.message}" for problem in problems)
        )
        self.problems = tuple(problems)


class PlanHasProblemsError(UseCaseError):
    """The governance file does not fit the platform; nothing of it may be applied."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = tuple(problems)


class UnknownAgreementError(UseCaseError):
    """No agreement of this id is applied."""

    def __init__(self, agreement_id: str) -> None:
        super().__init__(f"no agreement {agreement_id!r}")
        self.agreement_id = agreement_id


class AgreementDoesNotFitError(UseCaseError):
    """The agreement names fields, event types or partners the platform does not have."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = tuple(problems)


class AgreementVersionError(UseCaseError):
    """The agreement may not replace the applied one at this version."""

    def __init__(self, agreement_id: str, problem: str) -> None:
        super().__init__(f"agreement {agreement_id!r}: {problem}")
        self.agreement_id = agreement_id
        self.problem = problem


class UnknownEventTypeError(UseCaseError):
    """The catalog has no such event type."""

    def __init__(self, event_type: str, known: Sequence[str]) -> None:
        super().__init__(f"unknown event type {event_type!r}; known: {', '.join(known)}")
        self.event_type = event_type
        self.known = tuple(known)


class PublisherNotAllowedError(UseCaseError):
    """The partner may not publish: unknown, disabled, or without the publisher role."""

    def __init__(self, partner_id: str, *, known: bool) -> None:
        super().__init__(
            f"partner {partner_id!r} may not publish (unknown, disabled or "
            "without the publisher role)"
        )
        self.partner_id = partner_id
        self.known = known
