"""``python -m ecoshare.governance``: one governance worker, configured by ECOSHARE_*."""

from __future__ import annotations

import logging
import sys

from ecoshare.config.quiet import quiet_third_party_warnings
from ecoshare.config.secrets import signing_secret
from ecoshare.config.settings import Settings
from ecoshare.errors import ConfigurationError


def main() -> int:
    # Before the worker's modules import the registry client, so that its deprecation
    # warning does not open every worker log.
    quiet_third_party_warnings()
    from ecoshare.adapters.kafka.admin import broker_has_transactions
    from ecoshare.governance.process import WorkerProcessOptions, run_worker_process

    settings = Settings()
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s worker[%(process)d] %(name)s: %(message)s",
    )
    if not settings.bootstrap_servers or not settings.schema_registry_url:
        raise ConfigurationError(
            "a worker needs ECOSHARE_BOOTSTRAP_SERVERS and ECOSHARE_SCHEMA_REGISTRY_URL"
        )
    run_worker_process(
        WorkerProcessOptions(
            bootstrap_servers=settings.bootstrap_servers,
            schema_registry_url=settings.schema_registry_url,
            topic_prefix=settings.topic_prefix,
            master_secret=signing_secret(settings),
            schemas_dir=settings.schemas_dir,
            data_dir=settings.state_dir / "worker",
            ingress_partitions=settings.ingress_partitions,
            metrics_host=settings.bind_host,
            metrics_port=settings.metrics_port,
            batch_size=settings.batch_size,
            max_event_bytes=settings.max_event_bytes,
            dedup_window_seconds=settings.dedup_window_seconds,
            dedup_capacity=settings.dedup_capacity,
            engine=settings.engine,
            topic_policy=settings.topic_policy,
            worker_id=settings.worker_id,
            transactions=(
                broker_has_transactions(settings.bootstrap_servers)
                if settings.exactly_once == "auto"
                else settings.exactly_once == "transactions"
            ),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
