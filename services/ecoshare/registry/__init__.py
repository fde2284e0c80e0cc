"""A Confluent-compatible Avro schema registry whose state lives in a Kafka topic.

Run it with ``python -m ecoshare.registry`` or, from Python, :class:`RegistryProcess`.
Confluent's ``SchemaRegistryClient``, ``AvroSerializer`` and ``AvroDeserializer`` work
against it unchanged.
"""

from ecoshare.registry.process import RegistryProcess

__all__ = ["RegistryProcess"]
