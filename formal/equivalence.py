"""What an equivalence check answers, whichever checker asked: structural hashing and SAT sweeping
(``formal.aig``) or the plain CNF miter (``formal.sat``). One type, so ``cotproof equiv`` can compare two answers
without matching strings, and one interface check, so both refuse the same pairs of circuits."""
from __future__ import annotations

from dataclasses import dataclass

from grammar.errors import ParameterError
from grammar.ir import NormCircuit

EQUIVALENT, DIFFERENT, UNKNOWN = "equivalent", "different", "unknown"


@dataclass(frozen=True)
class Equivalence:
    status: str  # EQUIVALENT | DIFFERENT | UNKNOWN
    counterexample: dict[str, int] | None = None  # input name -> bit, where DIFFERENT and a witness was found
    method: str = ""
    reason: str | None = None  # why UNKNOWN

    @property
    def decided(self) -> bool:
        return self.status != UNKNOWN

    def contradicts(self, other: "Equivalence") -> bool:
        """Both decided, and not the same way: one of the two checkers is wrong."""
        return self.decided and other.decided and self.status != other.status


def require_same_interface(a: NormCircuit, b: NormCircuit) -> None:
    """Inputs matched by name, outputs compared in order: anything else is not a question either checker answers."""
    if sorted(a.input_names) != sorted(b.input_names):
        raise ParameterError(f"the circuits have different inputs: {sorted(set(a.input_names) ^ set(b.input_names))}")
    if len(a.outputs) != len(b.outputs):
        raise ParameterError(f"the circuits have {len(a.outputs)} and {len(b.outputs)} outputs")
