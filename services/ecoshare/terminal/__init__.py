"""Output for a person at a terminal: tables and the ecosystem health report."""
