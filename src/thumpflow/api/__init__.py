"""The HTTP control API (status, dead letters, replay) for scripts and the command line."""
