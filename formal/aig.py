"""Circuits as And-Inverter Graphs in aigverse (Python bindings of mockturtle): optimisation and equivalence that
see structure.

- ``optimize`` shrinks a circuit with mockturtle's cut rewriting, resubstitution, refactoring and balancing,
  keeping a step only when sweeping proves it equivalent to the original within a conflict budget; callers still
  prove the final result with ``equivalent`` before anything uses it.
- ``equivalent`` checks a miter with structural hashing and SAT sweeping (mockturtle's functional reduction, as in
  ABC's ``cec``): proving a multiplier equivalent to itself or to its optimised form takes well under a second,
  where a plain CNF miter gives up. A difference is turned into a concrete input vector, replayed in numpy.
"""
from __future__ import annotations

import numpy as np

from formal.equivalence import (
    DIFFERENT,
    EQUIVALENT,
    UNKNOWN,
    Equivalence,
    require_same_interface,
)
from grammar.evaluate import evaluate_packed, pack_bits, unpack_bits
from grammar.ir import CONST_OPS, Circuit, Gate, NormCircuit, build, fresh_name
from grammar.normalize import normalize


def _add(aig, nc: NormCircuit, pis: dict) -> list:
    """Build ``nc`` into ``aig`` over the primary inputs ``pis`` (by name); its output signals. mockturtle hashes
    every AND it creates, so a structure already in ``aig`` is reused rather than duplicated."""
    sig = [pis[name] for name in nc.input_names]
    const0 = aig.get_constant(False)
    consts = (const0, aig.create_not(const0))
    for g in nc.gates:
        a, b = (const0, const0) if g.op in CONST_OPS else (sig[g.a], sig[g.b])  # a circuit may have no inputs
        sig.append(build(g.op, a, b, AND=aig.create_and, OR=aig.create_or, NOT=aig.create_not,
                         const=consts.__getitem__))
    return [sig[node] for node in nc.outputs]


def _with_inputs(order: tuple[str, ...]):
    from aigverse.networks import NamedAig

    aig = NamedAig()
    pis = {name: aig.create_pi() for name in order}
    for name, s in pis.items():
        aig.set_name(s, name)
    return aig, pis


def to_aig(nc: NormCircuit, input_order: tuple[str, ...] | None = None):
    """The circuit as an aigverse NamedAig; ``input_order`` lists its inputs (by name) in the order to create them."""
    aig, pis = _with_inputs(input_order or nc.input_names)
    for k, (signal, name) in enumerate(zip(_add(aig, nc, pis), nc.output_names)):
        aig.create_po(signal)
        aig.set_output_name(k, name)
    return aig


def _listed(attr):
    """aigverse exposes some collections as properties on one network type and as methods on another."""
    return attr() if callable(attr) else attr


def _count(aig) -> int:
    return _listed(aig.num_gates)


def from_aig(aig, name: str, input_names: tuple[str, ...], output_names: tuple[str, ...]) -> Circuit:
    """An aigverse network (inputs and outputs in the order of the names given) as a Circuit of AND and NOT gates."""
    signal_name: dict[int, str] = {aig.node_to_index(pi): n for pi, n in zip(_listed(aig.pis), input_names)}
    gates: list[Gate] = []
    taken = set(input_names) | set(output_names)

    def literal(s) -> str:
        node = aig.node_to_index(aig.get_node(s))
        if aig.is_constant(aig.get_node(s)):
            key = f"const{int(aig.is_complemented(s))}"
            if key not in signal_name:
                signal_name[key] = fresh_name(key, taken)
                gates.append(Gate(signal_name[key], "CONST1" if aig.is_complemented(s) else "CONST0", ()))
            return signal_name[key]
        if not aig.is_complemented(s):
            return signal_name[node]
        key = f"~{node}"
        if key not in signal_name:
            signal_name[key] = fresh_name(f"{signal_name[node]}_n", taken)
            gates.append(Gate(signal_name[key], "NOT", (signal_name[node],)))
        return signal_name[key]

    for g in _listed(aig.gates):
        index = aig.node_to_index(g)
        a, b = aig.fanins(g)
        inputs = (literal(a), literal(b))
        signal_name[index] = fresh_name(f"n{index}", taken)
        gates.append(Gate(signal_name[index], "AND", inputs))
    for po, out in zip(_listed(aig.pos), output_names):
        src = literal(po)
        gates.append(Gate(out, "BUF", (src,)))
    return Circuit(name, tuple(input_names), tuple(output_names), tuple(gates))


def optimize(nc: NormCircuit, conflict_limit: int = 10_000, rounds: int = 1) -> NormCircuit:
    """A smaller circuit from mockturtle's rewriting, resubstitution, refactoring and balancing, with the original's
    port names, normalised; the original itself when nothing makes it smaller in normalised gates (the CoT length:
    an XOR is one gate there but three ANDs in an AIG, so an AIG that is smaller can still be longer).

    A candidate is kept only when it has fewer ANDs and sweeping proves it equivalent to the *original* within
    ``conflict_limit`` conflicts: a step whose proof would be slow (resubstitution on a multiplier) is dropped
    rather than trusted, so the final proof of the result against the original stays fast too."""
    from aigverse.algorithms import (
        aig_cut_rewriting,
        aig_resubstitution,
        balancing,
        cleanup_dangling,
        equivalence_checking,
        sop_refactoring,
    )

    original = cleanup_dangling(to_aig(nc))
    best = original
    steps = (aig_cut_rewriting, aig_resubstitution, sop_refactoring, balancing,
             lambda x: aig_cut_rewriting(x, allow_zero_gain=True))
    for _ in range(rounds):
        for step in steps:
            candidate = cleanup_dangling(step(best))
            if _count(candidate) < _count(best) and equivalence_checking(original, candidate,
                                                                          conflict_limit=conflict_limit):
                best = candidate
    if best is original:
        return nc
    result = normalize(from_aig(best, nc.name, nc.input_names, nc.output_names))
    return result if result.n_gates < nc.n_gates else nc


def _find_difference(a: NormCircuit, b: NormCircuit, vectors: int = 4096, seed: int = 0) -> dict[str, int] | None:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (vectors, a.n_inputs)).astype(np.uint8)
    order = [a.input_names.index(name) for name in b.input_names]
    va = evaluate_packed(a, pack_bits(x))[list(a.outputs)]
    vb = evaluate_packed(b, pack_bits(x[:, order]))[list(b.outputs)]
    diff = np.flatnonzero((unpack_bits(va ^ vb, vectors)).any(axis=1))
    if not diff.size:
        return None
    return {name: int(bit) for name, bit in zip(a.input_names, x[diff[0]])}


def equivalent(a: NormCircuit, b: NormCircuit, conflict_limit: int = 1_000_000) -> Equivalence:
    """Structural hashing + SAT sweeping over the miter of a and b (inputs matched by name, outputs in order)."""
    from aigverse.algorithms import equivalence_checking

    require_same_interface(a, b)
    # Structural hashing first, as ABC's cec does: both circuits in one network over shared inputs; outputs that
    # hash to the same signal are equal with no search at all.
    shared, pis = _with_inputs(a.input_names)
    if _add(shared, a, pis) == _add(shared, b, pis):
        return Equivalence(EQUIVALENT, method="structural hashing (mockturtle, via aigverse)")
    method = "structural hashing and SAT sweeping (mockturtle, via aigverse)"
    verdict = equivalence_checking(to_aig(a), to_aig(b, input_order=a.input_names), conflict_limit=conflict_limit)
    if verdict is None:
        return Equivalence(UNKNOWN, method=method, reason=f"no answer within {conflict_limit} SAT conflicts")
    if verdict:
        return Equivalence(EQUIVALENT, method=method)
    return Equivalence(DIFFERENT, _find_difference(a, b), method)
