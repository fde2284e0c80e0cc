"""The platform's named errors. Third-party errors are translated into these at the edges."""


class EcoshareError(Exception):
    """Base of every error the platform raises on purpose."""


class ConfigurationError(EcoshareError):
    """A setting or a declarative file is missing or wrong."""


class BrokerStartError(EcoshareError):
    """A local broker could not be started (binary missing, port in use, ...)."""


class BrokerUnavailableError(EcoshareError):
    """The Kafka cluster did not answer in time."""


class TopicCreationError(EcoshareError):
    """A platform topic could not be created."""
