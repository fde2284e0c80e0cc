"""``python -m ecoshare.governance``: one governance worker, configured by ECOSHARE_*."""

from __future__ import annotations

import sys

from ecoshare.application.bootstrap import load_settings, run_worker, start_service_logs


def main() -> int:
    settings = load_settings()
    # Before the worker's modules import the registry client, so that its deprecation
    # warning does not open every worker log.
    start_service_logs(settings.log_level, "worker")
    run_worker(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
