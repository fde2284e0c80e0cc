"""Errors raised by the pure domain."""

from __future__ import annotations

from ecoshare.errors import EcoshareError


class DomainError(EcoshareError):
    """Base of the domain's errors."""


class FieldRuleMismatchError(DomainError):
    """A field rule does not fit the field's type (e.g. rounding a string)."""


class HashKeyMissingError(DomainError):
    """A field must be hashed for a subscriber whose hash key was not supplied."""
