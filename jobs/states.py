"""Job states and the transitions between them (drawn in jobs/README.md)."""

from __future__ import annotations

import enum


class JobStatus(str, enum.Enum):
    PENDING = "PENDING"  # created, controller not yet provisioning
    PROVISIONING = "PROVISIONING"  # an attempt is being started on an offer
    RUNNING = "RUNNING"  # the attempt's training process runs
    PREEMPTED = "PREEMPTED"  # the capacity was taken back; a checkpoint may have been written
    RECOVERING = "RECOVERING"  # choosing the next offer after a preemption
    SUCCEEDED = "SUCCEEDED"
    FAILED_SETUP = "FAILED_SETUP"  # bad recipe / data / environment (exit 2): retrying cannot help
    FAILED = "FAILED"  # the training code crashed (not retried as a preemption)
    FAILED_NO_RESOURCE = "FAILED_NO_RESOURCE"  # no offer could be provisioned, or restarts exhausted
    CANCELLED = "CANCELLED"
    STOPPED_BUDGET = "STOPPED_BUDGET"  # budget.max_cost reached; stopped gracefully after a checkpoint
    STOPPED_DEADLINE = "STOPPED_DEADLINE"  # budget.deadline reached

    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED_SETUP, JobStatus.FAILED, JobStatus.FAILED_NO_RESOURCE,
                      JobStatus.CANCELLED, JobStatus.STOPPED_BUDGET, JobStatus.STOPPED_DEADLINE})
_STOPS = {JobStatus.CANCELLED, JobStatus.STOPPED_BUDGET, JobStatus.STOPPED_DEADLINE}

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROVISIONING, JobStatus.FAILED_NO_RESOURCE} | _STOPS),
    JobStatus.PROVISIONING: frozenset({JobStatus.RUNNING, JobStatus.RECOVERING, JobStatus.FAILED_SETUP, JobStatus.FAILED,
                                       JobStatus.FAILED_NO_RESOURCE, JobStatus.SUCCEEDED} | _STOPS),
    JobStatus.RUNNING: frozenset({JobStatus.SUCCEEDED, JobStatus.PREEMPTED, JobStatus.RECOVERING, JobStatus.FAILED_SETUP,
                                  JobStatus.FAILED} | _STOPS),
    JobStatus.PREEMPTED: frozenset({JobStatus.RECOVERING} | _STOPS),
    JobStatus.RECOVERING: frozenset({JobStatus.PROVISIONING, JobStatus.FAILED_NO_RESOURCE} | _STOPS),
    **{s: frozenset() for s in TERMINAL},
}


class TransitionError(Exception):
    pass


def check_transition(old: JobStatus, new: JobStatus) -> None:
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"job cannot go from {old.value} to {new.value}")


class EndReason(str, enum.Enum):
    """Why an attempt ended."""

    SUCCEEDED = "succeeded"
    PREEMPTED = "preempted"
    SETUP_FAILED = "setup_failed"
    CRASHED = "crashed"
    CANCELLED = "cancelled"
    BUDGET = "budget"
    DEADLINE = "deadline"
    SWITCHED = "switched"  # the spot policy moved the job (spot ↔ on-demand, another region, or to wait)
    LOST = "lost"  # the process vanished without an exit status and nobody preempted it
