"""The embedded platform: every service as a local child process, one per state directory."""
