"""Netlist files by format: the one place that maps a file to its reader and a circuit to its writer.

Each format has a module of its own (``grammar.bench``, ``grammar.aiger``, ``grammar.blif``, ``grammar.verilog``);
each reader produces a ``Circuit`` (the user's view) and ends with ``grammar.check.check_circuit``. Imports run one
way: this dispatcher -> format modules -> the shared checker.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit


@dataclass(frozen=True)
class Format:
    read: Callable[..., Circuit]  # (text or bytes, path) -> Circuit
    write: Callable[[Circuit], str | bytes] | None
    binary: bool = False


FORMATS = ("bench", "aag", "aig", "blif", "v")


@lru_cache(maxsize=1)
def formats() -> dict[str, Format]:
    """Imported on first use, so a command that reads one .bench file never loads the other grammars."""
    from grammar import aiger, bench, blif, verilog

    return {"bench": Format(bench.parse_bench, bench.write_bench),
            "aag": Format(aiger.parse_aag, aiger.write_aag),
            "aig": Format(aiger.parse_aig, aiger.write_aig, binary=True),
            "blif": Format(blif.parse_blif, blif.write_blif),
            "v": Format(verilog.parse_verilog, None)}

FORMAT_NAMES = {"verilog": "v"}  # --format accepts these too


def format_of(path: str | os.PathLike, fmt: str | None = None, flag: str = "--format") -> str:
    """The format named by ``fmt`` (a flag's value), else by the file's extension."""
    if fmt is not None:
        key = FORMAT_NAMES.get(fmt.lower().lstrip("."), fmt.lower().lstrip("."))
        if key not in FORMATS:
            raise InputError(f"unknown netlist format {fmt!r}", SourceLoc(flag), text=fmt,
                             expected="one of " + ", ".join(sorted(FORMATS)))
        return key
    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in FORMATS:
        raise InputError(f"unknown netlist format {('.' + suffix) if suffix else '(no extension)'!r}",
                         SourceLoc(str(path)), expected="a .bench, .aag, .aig, .blif or .v file (or --format)")
    return suffix


def load_netlist(path: str | os.PathLike, fmt: str | None = None) -> Circuit:
    """Read a netlist by its extension, or in the format ``fmt`` names."""
    f = formats()[format_of(path, fmt)]
    from grammar.source import read_bytes, read_text

    return f.read(read_bytes(path, "netlist") if f.binary else read_text(path, "netlist"), str(path))


def netlist_bytes(circuit: Circuit, fmt: str, where: str = "OUT") -> bytes:
    """``circuit`` written in format ``fmt``."""
    f = formats()[fmt]
    if f.write is None:
        raise InputError(f"writing .{fmt} is not supported yet", SourceLoc(where),
                         expected="one of " + ", ".join(f".{k}" for k, v in formats().items() if v.write))
    out = f.write(circuit)
    return out if isinstance(out, bytes) else out.encode()
