"""The one front door from what a user names on the command line to a built model.

``load_target(path)`` turns a spec (``.lark``) or a netlist into a ``Target``: always a ``Spec``, because a bare
netlist stands for the spec ``grammar.spec`` builds from its one table of defaults. ``build(target)`` turns a
target into the constructed model that verify, run and compile all use.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from grammar.errors import InputError, SourceLoc
from grammar.ir import Circuit, NormCircuit, Spec
from neural.constructed import ConstructedModel
from neural.fp import FPFormat


@dataclass(frozen=True)
class Target:
    path: str
    spec: Spec

    @property
    def has_circuit(self) -> bool:
        return self.spec.circuit is not None

    def raw_circuit(self) -> Circuit:
        """The circuit as the user wrote it (gate names and fan-ins as in the file)."""
        if self.spec.circuit is None:
            raise InputError("this spec has no circuit", SourceLoc(self.path),
                             expected="a netlist, or a spec with a 'circuit' section")
        return self.spec.circuit

    @cached_property
    def circuit(self) -> NormCircuit:
        """The circuit normalised to two-input gates in topological order: what every construction runs."""
        from grammar.normalize import normalize

        return normalize(self.raw_circuit())

    @property
    def fmt(self) -> FPFormat:
        p = self.spec.construction.precision
        return FPFormat(p.ebits, p.sbits)


def load_target(path: str, overrides: dict[str, str] | None = None) -> Target:
    """A spec file, or a netlist (which gets the default spec, with ``overrides`` applied as to a spec file)."""
    if Path(path).suffix == ".lark":
        from grammar.spec import parse_spec

        return Target(path, parse_spec(path, overrides))
    from grammar.netlist import load_netlist
    from grammar.spec import spec_for_circuit

    return Target(path, spec_for_circuit(load_netlist(path), path, overrides))


def build(target: Target, mode: str | None = None, bits: np.ndarray | None = None) -> ConstructedModel:
    """The construction of ``mode`` (default: the spec's) for this target.

    CVP mode builds one model for every circuit of up to ``max_gates`` gates; given the input ``bits`` of a run, it
    is sized to fit this circuit once lowered to CVP gates instead."""
    from neural.construct import build_cvp, build_thm33
    from neural.encode import lower_to_cvp

    c = target.spec.construction
    mode = mode or c.mode
    try:
        if mode == "thm33":
            return build_thm33(target.circuit, target.fmt, c.key_scale)
        max_gates = c.max_gates if bits is None else lower_to_cvp(target.circuit, bits).size
        return build_cvp(max_gates, target.fmt, c.key_scale)
    except ValueError as err:
        raise InputError(str(err), SourceLoc(target.path), expected="a circuit and construction parameters that "
                         "this construction and format support") from None
