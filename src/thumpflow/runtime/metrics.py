"""The engine's metrics: the flow's families plus scheduled job runs, read at scrape time.

Job figures come from the store's recorded runs when `/metrics` is scraped
(the runner and scheduler keep no counters of their own), so they survive
restarts and agree with `thumpflow runs`. They describe each enabled job's
latest runs: whether one is running, the last finished run (status, end
time, duration, record counts) and the end of the last successful one,
looked for among the job's `RUN_WINDOW` newest runs.
"""

from __future__ import annotations

from collections.abc import Sequence

from thumpflow.connectors.mllp.metrics import MllpMetrics
from thumpflow.core.batch import RunRecord, RunStatus
from thumpflow.core.metrics import Registry
from thumpflow.flow.metrics import FlowMetrics
from thumpflow.runtime.conversion import ConversionMetrics

RUN_WINDOW = 50

_COUNTS = ("read", "valid", "rejected", "written", "skipped")
_SUCCESS = (RunStatus.SUCCEEDED, RunStatus.PARTIAL)


class JobMetrics:
    """Gauges per job, set whole from its recorded runs (see the module docstring)."""

    def __init__(self, registry: Registry) -> None:
        job = ("job",)
        self.running = registry.gauge(
            "thumpflow_job_running", "1 while a run of the job is in progress.", job
        )
        self.last_status = registry.gauge(
            "thumpflow_job_last_run_status",
            "1 for the status of the job's last finished run "
            "(succeeded, partial, failed, skipped).",
            (*job, "status"),
        )
        self.last_finished = registry.gauge(
            "thumpflow_job_last_run_finished_timestamp_seconds",
            "When the job's last finished run ended (Unix time).",
            job,
        )
        self.last_duration = registry.gauge(
            "thumpflow_job_last_run_duration_seconds",
            "How long the job's last finished run took.",
            job,
        )
        self.last_records = registry.gauge(
            "thumpflow_job_last_run_records",
            "Records of the job's last finished run, by count "
            "(read, valid, rejected, written, skipped).",
            (*job, "count"),
        )
        self.last_success = registry.gauge(
            "thumpflow_job_last_success_timestamp_seconds",
            "When the job's last succeeded or partial run ended (Unix time).",
            job,
        )

    def sample(self, job_id: str, runs: Sequence[RunRecord]) -> None:
        """Set the job's gauges from its runs, newest first; a figure with no run is left out."""
        self.running.labels(job_id).set(
            1 if any(run.status is RunStatus.RUNNING for run in runs) else 0
        )
        finished = [(run, run.finished_at) for run in runs if run.finished_at is not None]
        if finished:
            last, ended = finished[0]
            for status in RunStatus:
                if status is not RunStatus.RUNNING:
                    self.last_status.labels(job_id, status.value).set(
                        1 if last.status is status else 0
                    )
            self.last_finished.labels(job_id).set(ended)
            self.last_duration.labels(job_id).set(max(0.0, ended - last.started_at))
            for name in _COUNTS:
                self.last_records.labels(job_id, name).set(getattr(last.counts, name))
        success = next((ended for run, ended in finished if run.status in _SUCCESS), None)
        if success is not None:
            self.last_success.labels(job_id).set(success)


class EngineMetrics:
    """One registry holding the flow's, the MLLP listeners' and the jobs' families."""

    def __init__(self) -> None:
        self.registry = Registry()
        self.flow = FlowMetrics(self.registry)
        self.mllp = MllpMetrics(self.registry)
        self.jobs = JobMetrics(self.registry)
        self.conversion = ConversionMetrics(self.registry)
