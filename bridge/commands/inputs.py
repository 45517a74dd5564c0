"""Flags users pass on the command line: bit strings, input vectors and ``--override KEY=VALUE``. Netlists and specs
go through ``bridge.target``."""
from __future__ import annotations

import tempfile
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


def read_vectors(path: str, count: int) -> np.ndarray:
    """One bit string per line (blank lines and '#' comments skipped); a bad line is an error at its place."""
    from grammar.source import read_text

    lines = read_text(path, "vector file").splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip().replace("_", "")
        if not text:
            continue
        bad = next((i for i, ch in enumerate(text) if ch not in "01"), None)
        if bad is not None or len(text) != count:
            column = line.index(text) + 1 + (bad or 0)
            raise InputError("a vector must be a string of 0s and 1s, one bit per input" if bad is not None else
                             f"this vector has {len(text)} bits but the circuit has {count} inputs",
                             SourceLoc(path, number, column), text=text, expected=f"exactly {count} bits")
        rows.append(np.frombuffer(text.encode(), dtype=np.uint8) - ord("0"))
    return np.array(rows, dtype=np.uint8).reshape(-1, count)


def input_vectors(args, count: int, bytes_per_vector: float = 0.0) -> tuple[np.ndarray, bool]:
    """The input vectors of a command that takes exactly one of ``--inputs BITS``, ``--vectors FILE`` and ``--random
    N [--seed S]``: ((B, count) bits, whether it was the one vector of ``--inputs``). Random vectors are priced
    (``bytes_per_vector`` besides their bits) before they are drawn."""
    sources = [s for s in ("inputs", "vectors", "random") if getattr(args, s) is not None]
    if len(sources) != 1:
        raise InputError("give exactly one of --inputs, --vectors and --random", SourceLoc("--inputs"),
                         expected="--inputs BITS, --vectors FILE or --random N [--seed S]")
    if args.inputs is not None:
        return parse_bits(args.inputs, count, "--inputs")[None, :], True
    if args.vectors is not None:
        return read_vectors(args.vectors, count), False
    from grammar.limits import require_memory

    require_memory(args.random * (2.0 * count + bytes_per_vector), f"{args.random:,} random vectors", "--random",
                   "fewer vectors")
    return np.random.default_rng(args.seed).integers(0, 2, (args.random, count)).astype(np.uint8), False


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
        with tempfile.TemporaryFile(dir=out):  # a name of its own: torchrun's ranks probe one directory at once
            pass
    except OSError as err:
        raise InputError(f"{flag}: cannot write into this directory: {err.strerror or err}", SourceLoc(path[:200]),
                         expected="a writable directory") from None
    return out
