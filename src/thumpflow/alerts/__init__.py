"""Alerts: conditions evaluated from the engine's readings, raised and cleared once each."""

from thumpflow.alerts.conditions import (
    AlertSettings,
    CensusReading,
    ChannelReading,
    CountTrend,
    JobReading,
    ListenerReading,
    OutboxReading,
    Reading,
    conditions,
)
from thumpflow.alerts.monitor import AlertMonitor

__all__ = [
    "AlertMonitor",
    "AlertSettings",
    "CensusReading",
    "ChannelReading",
    "CountTrend",
    "JobReading",
    "ListenerReading",
    "OutboxReading",
    "Reading",
    "conditions",
]
