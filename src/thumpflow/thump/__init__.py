"""Scheduled batch exchange ("thump"): schedules, runs, validation, reconciliation."""
