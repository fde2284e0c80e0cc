"""``python -m ecoshare.api``: serve the HTTP API on ECOSHARE_BIND_HOST:ECOSHARE_API_PORT."""

from __future__ import annotations

import logging
import sys

import uvicorn

from ecoshare.api.app import create_app
from ecoshare.api.config import DEFAULT_API_PORT, ApiConfig
from ecoshare.application.bootstrap import load_settings, start_service_logs
from ecoshare.errors import EcoshareError


def main() -> int:
    settings = load_settings()
    start_service_logs(settings.log_level, "api")
    try:
        app = create_app(ApiConfig.from_settings(settings))
    except EcoshareError as exc:
        logging.getLogger(__name__).error("%s", exc)
        return 2
    uvicorn.run(
        app,
        host=settings.bind_host,
        port=settings.api_port or DEFAULT_API_PORT,
        log_level=settings.log_level.lower(),
        access_log=False,
        # Open SSE streams would otherwise hold a shutdown until they end.
        timeout_graceful_shutdown=2,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
