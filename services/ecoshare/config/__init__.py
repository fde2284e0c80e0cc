"""Configuration: settings from the environment, topic names and policies, secrets, the governance file."""
