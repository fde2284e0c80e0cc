"""Partner SDK: publish and subscribe to governed events in one line each."""

from ecoshare.sdk.errors import (
    EventTooLargeError,
    EventValidationError,
    PublishError,
    SdkError,
)
from ecoshare.sdk.publisher import Publisher
from ecoshare.sdk.subscriber import Delivery, Subscriber

__all__ = [
    "Delivery",
    "EventTooLargeError",
    "EventValidationError",
    "PublishError",
    "Publisher",
    "SdkError",
    "Subscriber",
]
