"""The exception of ``livekit attach``: why a process could not be attached."""

from __future__ import annotations

from typing import Literal

#: Why an attach or a detach failed, one word each (the CLI's exit message names it too).
Reason = Literal[
    "no-process",
    "other-user",
    "not-cpython",
    "version",
    "no-gdb",
    "ptrace",
    "timeout",
    "not-attached",
    "failed",
]


class AttachError(RuntimeError):
    """A process could not be attached (or detached); the message says what to do.

    ``reason`` names the case in one word, so that a caller can tell a
    missing debugger from a refused ``ptrace`` without parsing the message.
    Whatever the reason, the target was left running as it was.

    Examples
    --------
    >>> error = AttachError("timeout", "process 42 did not answer within 1 s")
    >>> error.reason, str(error)
    ('timeout', 'process 42 did not answer within 1 s')
    """

    def __init__(self, reason: Reason, message: str) -> None:
        super().__init__(message)
        self.reason: Reason = reason
