"""Field classification carried by every field of the event catalog."""

from __future__ import annotations

from enum import StrEnum


class Classification(StrEnum):
    """How sensitive a field is.

    ``personal`` fields identify or describe a natural person and are delivered only
    under an active consent of the data subject; ``internal`` and ``public`` fields are
    governed by the agreement's field rules alone.
    """

    PUBLIC = "public"
    INTERNAL = "internal"
    PERSONAL = "personal"
