"""Flags users pass on the command line: bit strings and ``--override KEY=VALUE``. Files go through
``bridge.target``."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from grammar.errors import InputError, SourceLoc


def parse_bits(text: str, count: int, flag: str) -> np.ndarray:
    """'10110' (spaces, commas and underscores allowed) -> uint8 array of exactly ``count`` bits."""
    cleaned = text.replace(",", "").replace(" ", "").replace("_", "")
    bad = next((ch for ch in cleaned if ch not in "01"), None)
    if bad is not None:
        raise InputError(f"{flag} must be a string of 0s and 1s", SourceLoc(flag), text=text,
                         expected=f"{count} bits such as {'01' * (count // 2) + '0' * (count % 2)}")
    if len(cleaned) != count:
        raise InputError(f"{flag} has {len(cleaned)} bits but {count} are needed", SourceLoc(flag), text=text,
                         expected=f"exactly {count} bits")
    return np.frombuffer(cleaned.encode(), dtype=np.uint8) - ord("0")


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise InputError("--override needs KEY=VALUE", SourceLoc("--override"), text=item,
                             expected="for example key_scale=1")
        if key.strip() in out:  # the last one silently winning would hide a typo
            raise InputError(f"--override {key.strip()} is given twice", SourceLoc("--override"), text=item,
                             expected="each key once")
        out[key.strip()] = value.strip()
    return out


def writable_directory(path: str, flag: str) -> Path:
    """A directory a command will write into, created and checked before any work starts, so a proof of minutes
    does not end in an unwritable path."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".cotproof-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise InputError(f"{flag}: cannot write into this directory: {err.strerror or err}", SourceLoc(path[:200]),
                         expected="a writable directory") from None
    return out
