"""Errors of the schema registry, each carrying its Confluent HTTP status and error code.

Confluent clients branch on ``error_code`` (for example 40401 versus 40403), so every
error the registry answers with names the exact code Confluent's registry would send.
"""

from __future__ import annotations

from ecoshare.errors import EcoshareError


class RegistryError(EcoshareError):
    """An answer the registry gives on purpose: HTTP status, Confluent error code, message."""

    http_status: int = 500
    error_code: int = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


class MalformedRequestError(RegistryError):
    """The request body is not JSON, or not the JSON object the endpoint expects."""

    http_status = 400
    error_code = 400


class UnsupportedMediaTypeError(RegistryError):
    http_status = 415
    error_code = 415


class NotFoundError(RegistryError):
    """Base of the 404 answers: something another instance may have written a moment ago."""

    http_status = 404
    error_code = 404


class SubjectNotFoundError(NotFoundError):
    error_code = 40401

    def __init__(self, subject: str) -> None:
        super().__init__(f"Subject '{subject}' not found.")


class VersionNotFoundError(NotFoundError):
    error_code = 40402

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(f"Version {version} not found for subject '{subject}'.")


class SchemaNotFoundError(NotFoundError):
    error_code = 40403


class SubjectSoftDeletedError(NotFoundError):
    error_code = 40404

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
        )


class SubjectNotSoftDeletedError(NotFoundError):
    error_code = 40405

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' was not deleted first before being permanently deleted"
        )


class VersionSoftDeletedError(NotFoundError):
    error_code = 40406

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was soft deleted. "
            "Set permanent=true to delete permanently"
        )


class VersionNotSoftDeletedError(NotFoundError):
    error_code = 40407

    def __init__(self, subject: str, version: int) -> None:
        super().__init__(
            f"Subject '{subject}' Version {version} was not deleted first before being "
            "permanently deleted"
        )


class SubjectConfigNotFoundError(NotFoundError):
    error_code = 40408

    def __init__(self, subject: str) -> None:
        super().__init__(
            f"Subject '{subject}' does not have subject-level compatibility configured"
        )


class IncompatibleSchemaError(RegistryError):
    http_status = 409
    error_code = 409

    def __init__(self, subject: str, messages: list[str]) -> None:
        super().__init__(
            "Schema being registered is incompatible with an earlier schema for subject "
            f"'{subject}', details: {messages}"
        )
        self.messages = messages


class InvalidSchemaError(RegistryError):
    http_status = 422
    error_code = 42201


class InvalidVersionError(RegistryError):
    http_status = 422
    error_code = 42202

    def __init__(self, version: str) -> None:
        super().__init__(
            f"The specified version '{version}' is not a valid version id. Allowed values "
            'are between [1, 2^31-1] and the string "latest"'
        )


class InvalidCompatibilityLevelError(RegistryError):
    http_status = 422
    error_code = 42203

    def __init__(self, level: object) -> None:
        super().__init__(
            f"Invalid compatibility level {level!r}. Valid values are none, backward, "
            "forward, full, backward_transitive, forward_transitive, and full_transitive"
        )


class StoreError(RegistryError):
    """The Kafka topic behind the registry refused or lost a write."""

    http_status = 500
    error_code = 50001


class StoreTimeoutError(StoreError):
    """The Kafka topic did not confirm a write, or did not catch up, in time."""

    error_code = 50002


class RegistryStartError(EcoshareError):
    """The registry process did not come up (exited, or did not answer in time)."""
