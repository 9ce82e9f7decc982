"""Error types a person can act on.

Every error raised for bad input derives from :class:`SpotrainError`; the CLI prints its
message on one line and exits with :attr:`SpotrainError.exit_code` (2), with no traceback
unless ``SPOTRAIN_DEBUG=1``.
"""

from __future__ import annotations


class SpotrainError(Exception):
    """A problem the user can fix; its message says what to fix."""

    exit_code = 2


class RecipeError(SpotrainError):
    """The recipe (file or overrides) is invalid. ``lines`` holds one message per problem."""

    def __init__(self, lines: list[str]):
        self.lines = list(lines)
        super().__init__(
            "; ".join(self.lines)
            if len(self.lines) <= 1
            else f"{len(self.lines)} problems:\n" + "\n".join(self.lines)
        )


class DataError(SpotrainError):
    """Data sources are missing or produce nothing usable."""


class CheckpointError(SpotrainError):
    """A checkpoint cannot be used for this run."""
