"""One error type for every kind of bad input, so the CLI has one place that turns it into exit status 2.

An InputError knows where the problem is (file:line:column), the offending text, and what was expected in human
words. Its ``str`` is the message users see; golden tests pin it down.
"""
from __future__ import annotations

from dataclasses import dataclass

FOUND_CHARS = 120  # the offending text is quoted up to this length: a 100 kB token is named, not printed


@dataclass(frozen=True)
class SourceLoc:
    """A place in a user's file. ``line`` and ``column`` count from 1; 0 means unknown. Binary files give ``byte``."""

    path: str
    line: int = 0
    column: int = 0
    byte: int | None = None  # binary files have no lines: the offset of the offending byte

    def __str__(self) -> str:
        path = self.path if len(self.path) <= FOUND_CHARS else self.path[:FOUND_CHARS] + "..."
        if self.byte is not None:
            return f"{path}:byte {self.byte}"
        if self.line and self.column:
            return f"{path}:{self.line}:{self.column}"
        if self.line:
            return f"{path}:{self.line}"
        return path


class InputError(Exception):
    """Malformed spec, netlist, checkpoint or flag. Always reported as one message and exit status 2."""

    def __init__(self, message: str, loc: SourceLoc | None = None, text: str | None = None,
                 expected: str | None = None):
        self.message = message
        self.loc = loc
        self.text = text
        self.expected = expected
        super().__init__(str(self))

    def __str__(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        parts = [head]
        if self.text is not None:
            text = self.text if len(self.text) <= FOUND_CHARS else self.text[:FOUND_CHARS] + "..."
            parts.append(f"  found: {text!r}" + (f" ({len(self.text):,} characters)" if text != self.text else ""))
        if self.expected:
            parts.append(f"  expected: {self.expected}")
        return "\n".join(parts)


class ParameterError(ValueError):
    """A value the user chose (a format, a size, a task parameter, a device, two circuits to compare) that the
    library cannot take. The library raises it where it finds the problem, without knowing where the value came
    from; the command that read the value catches exactly this class and reports it at that place (exit 2). Any
    other ValueError is a bug, and is reported as one (exit 70)."""


class Refused(InputError):
    """A well-formed request for more than this machine should attempt (memory, simulated tokens, input size):
    exit status 2 like any bad input, with the estimate in the message and ``--no-limit`` to go ahead anyway."""
