"""The HTTP API: operator and partner endpoints, HTTP publish, SSE, webhooks.

Run it with ``python -m ecoshare.api`` (``ecoshare up`` does); build it with
:func:`ecoshare.api.app.create_app`.
"""
