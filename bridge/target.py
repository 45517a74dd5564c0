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

from grammar.errors import InputError, ParameterError, SourceLoc
from grammar.ir import Circuit, Mode, NormCircuit, Spec
from neural.construction.constructed import ConstructedModel
from neural.construction.fp import FPFormat


@dataclass(frozen=True)
class Target:
    path: str
    spec: Spec
    optimized: NormCircuit | None = None  # --optimize: the smaller circuit, proved equivalent to the original
    optimize_report: dict | None = None  # {gates_before, gates_after, cot_steps_before, cot_steps_after, equivalent}

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
        """The circuit normalised to two-input gates in topological order: what every construction runs (the
        optimised one under --optimize)."""
        from grammar.normalize import normalize

        return self.optimized if self.optimized is not None else normalize(self.raw_circuit())

    @property
    def fmt(self) -> FPFormat:
        p = self.spec.construction.precision
        return FPFormat(p.ebits, p.sbits)


def load_target(path: str, overrides: dict[str, str] | None = None, fmt: str | None = None,
                optimize: bool = False) -> Target:
    """A spec file, or a netlist (which gets the default spec, with ``overrides`` applied as to a spec file).
    ``fmt`` (``--format``) names the netlist's format where its extension does not; ``optimize`` shrinks the
    circuit and proves the result equivalent before anything uses it."""
    if Path(path).suffix == ".lark" and fmt is None:
        from grammar.spec import parse_spec

        target = Target(path, parse_spec(path, overrides))
    else:
        from grammar.netlist import load_netlist
        from grammar.spec import spec_for_circuit

        target = Target(path, spec_for_circuit(load_netlist(path, fmt), path, overrides))
    return optimized(target) if optimize else target


def in_ieee(target: Target, dtype: str) -> Target:
    """The target with its format replaced by a torch dtype's grid (``--ieee``): what the lemmas are then stated
    over, in IEEE arithmetic."""
    from dataclasses import replace

    from grammar.ir import Precision
    from neural.construction.fp import IEEE_FORMATS

    if dtype not in IEEE_FORMATS:
        raise InputError(f"--ieee {dtype!r} is not a dtype verify can prove", SourceLoc("--ieee"),
                         expected=", ".join(IEEE_FORMATS))
    c = target.spec.construction
    spec = replace(target.spec, construction=replace(c, precision=Precision(*IEEE_FORMATS[dtype])))
    return replace(target, spec=spec)


def cot_steps(nc: NormCircuit, mode: Mode) -> int:
    """CoT tokens a run of this circuit writes: one per normalised gate, or four per CVP gate once lowered."""
    if mode == Mode.THM33:
        return nc.n_gates
    from neural import cvp

    return 4 * cvp.lower(nc, np.zeros(nc.n_inputs, dtype=np.uint8)).size


def optimized(target: Target, mode: Mode | None = None) -> Target:
    """The target with its circuit optimised (formal.aig) and the result proved equivalent to the original by
    sweeping; an unfinished proof raises Undecided (exit 3) and nothing optimised is used."""
    from dataclasses import replace

    from bridge.output import Undecided
    from formal.aig import equivalent, optimize
    from formal.equivalence import EQUIVALENT

    before = target.circuit
    after = optimize(before)
    verdict = equivalent(before, after)
    if verdict.status != EQUIVALENT:
        raise Undecided(f"the optimised circuit could not be proved equivalent to {target.path} "
                        f"({verdict.reason or verdict.status}); the original is kept and nothing was run")
    mode = mode or target.spec.construction.mode
    report = {"gates_before": before.n_gates, "gates_after": after.n_gates,
              "cot_steps_before": cot_steps(before, mode), "cot_steps_after": cot_steps(after, mode),
              "equivalent": True, "method": verdict.method}
    return replace(target, optimized=after, optimize_report=report)


def construction_size(target: Target, mode: Mode, bits: np.ndarray | None = None) -> tuple[int, int, int]:
    """(positions, vocabulary, CVP gates) of the construction ``build`` makes, known before it is built."""
    from neural import cvp

    if mode == Mode.THM33:
        return target.circuit.n_inputs + target.circuit.n_gates, 2, 0
    c = target.spec.construction
    max_gates = c.max_gates if bits is None else cvp.lower(target.circuit, bits).size
    return cvp.sequence_length(max_gates), len(cvp.vocab(0)) + 2 * max_gates, max_gates  # ids and refs: 2N


def build(target: Target, mode: Mode | None = None, bits: np.ndarray | None = None,
          as_arrays: bool = True) -> ConstructedModel:
    """The construction of ``mode`` (default: the spec's) for this target.

    CVP mode builds one model for every circuit of up to ``max_gates`` gates; given the input ``bits`` of a run, it
    is sized to fit this circuit once lowered to CVP gates instead. ``as_arrays``: the command will load or write
    every table as an array (run, compile, export), so the limit prices them so; verify reads CVP's as programs."""
    from grammar.limits import require_memory
    from neural.construction.construct import build_cvp, build_thm33, construction_bytes

    c = target.spec.construction
    mode = mode or c.mode
    length, vocab, max_gates = construction_size(target, mode, bits)
    require_memory(construction_bytes(mode, length, vocab, target.fmt, c.key_scale, as_arrays),
                   f"the {mode} construction for {length:,} positions", target.path, "a smaller circuit or max_gates")
    try:
        if mode == Mode.THM33:
            return build_thm33(target.circuit, target.fmt, c.key_scale)
        return build_cvp(max_gates, target.fmt, c.key_scale)
    except ParameterError as err:
        raise InputError(str(err), SourceLoc(target.path), expected="a circuit and construction parameters that "
                         "this construction and format support") from None
