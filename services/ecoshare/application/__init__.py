"""Use cases shared by the HTTP API and the CLI, and the wiring of settings to adapters."""
