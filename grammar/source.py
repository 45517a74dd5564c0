"""Reading a user's file: the one place that opens specs, netlists, vector files and JSON documents.

- Text is UTF-8 (a leading byte-order mark is accepted); any other byte is an error at its line, column and byte.
- Every read is capped (``grammar.limits.INPUT_BYTES``), so ``/dev/zero`` or a runaway file is refused after
  reading one byte past the cap, never swallowed.
"""
from __future__ import annotations

import os

from grammar import limits
from grammar.errors import InputError, Refused, SourceLoc


def read_bytes(path: str | os.PathLike, what: str = "file", cap: int | None = None) -> bytes:
    """The file's bytes, at most the input cap (unless lifted), or ``cap``: the most a well-formed file of this
    kind can hold (never lifted); one clear error for anything unreadable."""
    structural = cap is not None
    if not structural:
        cap = None if limits.lifted() else limits.INPUT_BYTES
    try:
        with open(path, "rb") as f:
            data = f.read() if cap is None else f.read(cap + 1)
    except IsADirectoryError:
        raise InputError(f"cannot read {what}: it is a directory", SourceLoc(str(path))) from None
    except OSError as err:
        raise InputError(f"cannot read {what}: {err.strerror or err}", SourceLoc(str(path))) from None
    if structural and len(data) > cap:
        raise InputError(f"the {what} is larger than {limits.human_bytes(cap)}, more than its header says it can "
                         f"hold", SourceLoc(str(path)), expected="the file written with it")
    if cap is not None and len(data) > cap:
        raise Refused(f"the {what} is larger than {limits.human_bytes(cap)} (or endless), the input size limit; "
                      f"--no-limit reads it anyway", SourceLoc(str(path)), expected="an input file of sensible size")
    return data


def decode(data: bytes, path: str, what: str = "file") -> str:
    """UTF-8 text, without a leading BOM; a byte that is not UTF-8 is an error at its place."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        head = data[:err.start]
        line = head.count(b"\n") + 1
        column = err.start - (head.rfind(b"\n") + 1) + 1
        raise InputError(f"the {what} is not UTF-8 text: byte {err.start} is 0x{data[err.start]:02x}",
                         SourceLoc(path, line, column), expected="UTF-8 text (ASCII is fine)") from None


def read_text(path: str | os.PathLike, what: str = "file") -> str:
    return decode(read_bytes(path, what), str(path), what)


def parse_json(text: str, path: str | os.PathLike, what: str, expected: str):
    """``text`` (read from ``path``) as JSON; malformed JSON is one InputError at its line and column."""
    import json

    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{what} is not valid JSON: {err.msg}", SourceLoc(str(path), err.lineno, err.colno),
                         expected=expected) from None
