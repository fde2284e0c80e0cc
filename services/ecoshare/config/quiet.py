"""Third-party warnings that are noise to an operator, silenced at every entry point."""

from __future__ import annotations

import contextlib
import warnings


def quiet_third_party_warnings() -> None:
    """Silence the deprecation warning authlib prints when the registry client imports it.

    authlib installs an "always" filter for its warning on import, so it is imported
    first and the "ignore" filters are put in front of it. Call this before anything
    imports confluent-kafka's schema registry client.
    """
    with contextlib.suppress(ImportError):
        import authlib.deprecate  # noqa: F401
    warnings.filterwarnings("ignore", module="authlib.*")
    warnings.filterwarnings("ignore", message=".*httpx2.*")
