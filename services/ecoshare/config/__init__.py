"""Configuration: environment settings, topic names and policies, secrets, governance file."""
