"""Former name of :mod:`ecoshare.sdk.errors`, kept importable for partner code.

The SDK's errors live in ``ecoshare.sdk.errors`` (every package of the platform names
its error module ``errors``); partners' code written against
``ecoshare.sdk.exceptions`` keeps working through this alias.
"""

from ecoshare.sdk.errors import (
    DeliveryDecodeError,
    EventTooLargeError,
    EventValidationError,
    PublishError,
    SdkError,
)

__all__ = [
    "DeliveryDecodeError",
    "EventTooLargeError",
    "EventValidationError",
    "PublishError",
    "SdkError",
]
