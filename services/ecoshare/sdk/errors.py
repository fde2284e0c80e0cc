"""Errors the SDK raises; Kafka and registry errors are translated into these."""

from ecoshare.errors import EcoshareError


class SdkError(EcoshareError):
    """Base of the SDK's errors."""


class EventValidationError(SdkError):
    """An event does not match its schema; ``field`` names the offending field path."""

    def __init__(self, event_type: str, field: str, message: str) -> None:
        super().__init__(f"{event_type}.{field}: {message}")
        self.event_type = event_type
        self.field = field
        self.message = message


class EventTooLargeError(EventValidationError):
    """An encoded event is larger than the platform accepts (its workers would quarantine
    it as ``oversize_event``)."""

    def __init__(self, event_type: str, size: int, limit: int) -> None:
        super().__init__(
            event_type, "(event)", f"{size} bytes encoded; the platform accepts at most {limit}"
        )
        self.size = size
        self.limit = limit


class PublishError(SdkError):
    """The broker did not acknowledge an event."""


class DeliveryDecodeError(SdkError):
    """A delivered message could not be decoded with its registered schema."""
