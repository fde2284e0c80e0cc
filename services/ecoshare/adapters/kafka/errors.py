"""Errors of the Kafka adapters; confluent-kafka's are translated into these here."""

from ecoshare.errors import EcoshareError


class KafkaIoError(EcoshareError):
    """Base of the errors raised while following, reading or writing a topic."""


class TopicMissingError(KafkaIoError):
    """A topic to read or follow does not exist."""


class ReadTimeoutError(KafkaIoError):
    """A topic was not read to its end in time."""


class WriteNotAcknowledgedError(KafkaIoError):
    """A record was refused by the cluster, or not acknowledged in time."""


class AcknowledgementTimeoutError(WriteNotAcknowledgedError):
    """No acknowledgement (nor refusal) of a record arrived in time."""


class ControlRecordError(KafkaIoError):
    """A JSON record of a compacted (control) topic could not be encoded or decoded."""
