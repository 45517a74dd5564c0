"""Netlist files by format: the one place that maps a file to its reader.

Each format has a module of its own (``grammar.bench``, ``grammar.aiger``), each reader produces a ``Circuit`` (the
user's view) and ends with ``grammar.check.check_circuit``. Imports run one way: this dispatcher -> format modules
-> the shared checker.
"""
from __future__ import annotations

import os
from pathlib import Path

from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit


def read_text(path: str | os.PathLike) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"cannot read netlist: {getattr(err, 'strerror', None) or err}", SourceLoc(str(path))) from None


def load_netlist(path: str | os.PathLike) -> Circuit:
    """Read a ``.bench`` or ``.aag`` file by its extension."""
    path = str(path)
    suffix = Path(path).suffix.lower()
    if suffix == ".bench":
        from grammar.bench import parse_bench

        return parse_bench(read_text(path), path)
    if suffix == ".aag":
        from grammar.aiger import parse_aag

        return parse_aag(read_text(path), path)
    if suffix == ".aig":
        raise InputError("binary AIGER (.aig) is not supported yet; convert it to ASCII with 'aigtoaig x.aig x.aag'",
                         SourceLoc(path))
    raise InputError(f"unknown netlist format {suffix or '(no extension)'!r}", SourceLoc(path),
                     expected="a .bench or .aag file")
