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


TERMINAL = frozenset(
    {
        JobStatus.SUCCEEDED,
        JobStatus.FAILED_SETUP,
        JobStatus.FAILED,
        JobStatus.FAILED_NO_RESOURCE,
        JobStatus.CANCELLED,
        JobStatus.STOPPED_BUDGET,
        JobStatus.STOPPED_DEADLINE,
    }
)
_STOPS = {JobStatus.CANCELLED, JobStatus.STOPPED_BUDGET, JobStatus.STOPPED_DEADLINE}

TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.PENDING: frozenset({JobStatus.PROVISIONING, JobStatus.FAILED_NO_RESOURCE} | _STOPS),
    JobStatus.PROVISIONING: frozenset(
        {
            JobStatus.RUNNING,
            JobStatus.RECOVERING,
            JobStatus.FAILED_SETUP,
            JobStatus.FAILED,
            JobStatus.FAILED_NO_RESOURCE,
            JobStatus.SUCCEEDED,
        }
        | _STOPS
    ),
    JobStatus.RUNNING: frozenset(
        {
            JobStatus.SUCCEEDED,
            JobStatus.PREEMPTED,
            JobStatus.RECOVERING,
            JobStatus.FAILED_SETUP,
            JobStatus.FAILED,
        }
        | _STOPS
    ),
    JobStatus.PREEMPTED: frozenset({JobStatus.RECOVERING} | _STOPS),
    JobStatus.RECOVERING: frozenset({JobStatus.PROVISIONING, JobStatus.FAILED_NO_RESOURCE} | _STOPS),
    **{s: frozenset() for s in TERMINAL},
}


class TransitionError(Exception):
    pass


def check_transition(old: JobStatus, new: JobStatus) -> None:
    if new not in TRANSITIONS[old]:
        raise TransitionError(f"job cannot go from {old.value} to {new.value}")


class Request(str, enum.Enum):
    """What a live job was asked to do and has not finished doing (``Job.requested``; None: nothing).

    A person asks for ``CANCEL`` or ``PREEMPT`` (CLI, TUI); the controller turns them, and its own
    decisions, into the in-flight ones: ``PREEMPTING`` (SIGTERM sent, the attempt ends as preempted),
    ``SWITCHING`` (the spot policy moves the job) and ``STOPPING_*`` (checkpoint, then the job ends
    for that reason). ``REQUEST_TRANSITIONS`` says which may follow which."""

    CANCEL = "cancel"
    PREEMPT = "preempt"
    PREEMPTING = "preempting"
    SWITCHING = "switching"
    STOPPING_CANCEL = "stopping:cancel"
    STOPPING_BUDGET = "stopping:budget"
    STOPPING_DEADLINE = "stopping:deadline"

    @property
    def stopping(self) -> bool:
        return self.value.startswith("stopping:")

    @property
    def reason(self) -> str | None:
        """cancel | budget | deadline for a stop."""
        return self.value.split(":", 1)[1] if self.stopping else None

    @classmethod
    def stop(cls, reason: str) -> Request:
        return cls(f"stopping:{reason}")


_STOPPING = frozenset({Request.STOPPING_CANCEL, Request.STOPPING_BUDGET, Request.STOPPING_DEADLINE})
_CONTROLLER_STOPS = frozenset({Request.STOPPING_BUDGET, Request.STOPPING_DEADLINE})
# old request (None: none) → the ones that may replace it; any request may be cleared (→ None)
# once the attempt it concerns ends. A stop is never turned into a preemption or a switch, and a
# person's cancel outranks the controller's own moves.
REQUEST_TRANSITIONS: dict[Request | None, frozenset[Request]] = {
    None: frozenset(
        {Request.CANCEL, Request.PREEMPT, Request.PREEMPTING, Request.SWITCHING} | _CONTROLLER_STOPS
    ),
    Request.CANCEL: frozenset({Request.STOPPING_CANCEL}),
    Request.PREEMPT: frozenset({Request.CANCEL, Request.PREEMPTING} | _CONTROLLER_STOPS),
    Request.PREEMPTING: frozenset({Request.CANCEL} | _CONTROLLER_STOPS),
    Request.SWITCHING: frozenset({Request.CANCEL} | _CONTROLLER_STOPS),
    Request.STOPPING_CANCEL: frozenset(),
    Request.STOPPING_BUDGET: frozenset({Request.CANCEL}),
    Request.STOPPING_DEADLINE: frozenset({Request.CANCEL}),
}


def check_request(old: Request | None, new: Request | None) -> None:
    if new is not None and new != old and new not in REQUEST_TRANSITIONS[old]:
        raise TransitionError(f"a job {_doing(old)} cannot be asked to {new.value}")


def _doing(r: Request | None) -> str:
    if r is None:
        return "with nothing requested"
    if r.stopping:
        return f"stopping for {r.reason}"
    return {
        Request.CANCEL: "being cancelled",
        Request.PREEMPT: "asked to preempt",
        Request.PREEMPTING: "being preempted",
        Request.SWITCHING: "being moved by its spot policy",
    }[r]


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
