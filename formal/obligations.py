"""The proof obligations of a constructed model, run lemma by lemma, and the composition argument over them."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from formal.embedding import embedding_violations
from formal.exactness import order_independence_items
from formal.gate_ffn import gate_ffn_queries
from formal.query import PROVED, REFUTED, UNKNOWN, Outcome, Query, Violation, solve
from formal.readout import readout_queries
from formal.retrieval import retrieval_queries
from grammar.ir import Mode
from neural.construction.constructed import ConstructedModel

TABLE_LEMMA = "embedding"  # checked entry by entry, no solver: the symbolic lemmas stand on it
ORDER_LEMMA = "order_independence"  # IEEE only: exact enumeration of every dot product's partial sums
SOLVER_LEMMAS = ("retrieval", "gate_ffn", "readout")
COMPOSED_FROM = (TABLE_LEMMA, *SOLVER_LEMMAS)  # what the composition argument needs, in the order it uses them
COMPOSED_FROM_IEEE = (TABLE_LEMMA, ORDER_LEMMA, *SOLVER_LEMMAS)


def composed_from(ieee: bool) -> tuple[str, ...]:
    return COMPOSED_FROM_IEEE if ieee else COMPOSED_FROM

COMPOSITION = (
    "Induction on CoT steps. Assume the positions before step t hold the prompt and the correct values of the "
    "earlier steps. [embedding] every position carries the codes its layout promises, and [tok + pos] is exact. "
    "[retrieval] each head's score is 0 exactly at the unique position whose code equals its query and <= U < T "
    "elsewhere, so [exp] gives weights 1 and 0, the softmax returns that position's value exactly, and the value "
    "and output projections copy it to the head's field: the gate's type and input values reach the FFN. "
    "[gate_ffn] the FFN writes exactly the gate's value to 'out' and adds 0 to every other coordinate. "
    "[readout] the argmax of the logits is the token of that value. So step t is correct, and by induction every "
    "CoT step is.")

ORDER_ARGUMENT = (  # IEEE arithmetic: first make every summation order exact, then any mode's induction holds
    "In IEEE arithmetic, in any summation order. [order_independence] every partial sum of every dot product the "
    "model computes (embedding sums, projections, scores, FFN, unembedding, residual updates), over any subset of "
    "its terms and any inputs in their domains, is finite and exactly representable; a kernel's order, blocking or "
    "fused multiply-add only ever forms such partial sums, so every one of them computes the exact sum, and the "
    "lemmas below, stated for one order, hold for all.")

INDUCTION_IEEE = (
    "[embedding] every position carries its codes; [retrieval] each bit pair of a score adds exactly 0 on a match "
    "and <= T < 0 on a mismatch, so the exact score is 0 at the one matching position and <= T elsewhere, [exp] "
    "gives weights 1 and 0, and the softmax, computed as the paper defines it, max-subtracted as torch.softmax "
    "does, or rescaled online as flash-style kernels do, returns that position's value exactly (no inf, no NaN); "
    "[gate_ffn] the FFN writes exactly the gate's value; [readout] every logit is finite and the argmax is the "
    "token of that value. So every CoT step is correct in that dtype, whatever order its kernels sum in. Rows that "
    "match no key (a prompt position with nothing to fetch) occur only in the last layer, where they reach only "
    "their own position's logits: [embedding] checks that every earlier layer's query on every token names a "
    "position (a prompt token fetches position 0), so no average ever reaches a key or a value.")

COMPOSITION_CVP = (
    "Induction on CoT tokens, four per gate (@a_g, v(a_g), @b_g, v(g)). Assume the positions before t hold the "
    "prompt of a circuit of N gates (padded in front) and the correct earlier CoT tokens. [embedding] position t "
    "carries sbin(t) and its role: role_id where @a_g or @b_g is next, role_va where v(a_g) is, role_vg where v(g) "
    "is, never two; every query names one position at or before t: the prompt slot 4(g-1)+1 or +2 of the next "
    "id, the type slot 4(g-1) and the previous position where v(g) is next, C(j)+3 on the token @j (j < g, so "
    "already written), and position 0 otherwise (a type token, whose in_code is 0 and whose value is 0). "
    "[retrieval] each of the four heads returns exactly the value at the position it names: the id head sbin(a_g) "
    "or sbin(b_g) (0 for NA), the value head v(j) (correct by the hypothesis), the type head type_g, the previous "
    "head v(a_g). [gate_ffn] in each role the FFN writes exactly out = type_g(v(a_g), v(b_g)) (role_vg), "
    "out = v(j) (role_va) or out = 0 (role_id), and adds 0 elsewhere. [readout] in each role the argmax is the "
    "right token: the id in g_in (NA for 0) where an id is next, the value in out where a value is next. So token "
    "t is correct, and by induction every CoT token is; the answer is the last, v(N). The logits of prompt "
    "positions are never read.")


@dataclass
class LemmaResult:
    name: str
    status: str
    seconds: float
    method: str
    outcomes: list[Outcome] = field(default_factory=list)
    detail: str | None = None
    failure: dict | None = None  # a bounded check's first wrong instance, already concrete (nothing to replay)

    @property
    def counterexample(self) -> Outcome | None:
        return next((o for o in self.outcomes if o.status == REFUTED), None)

    def to_json(self) -> dict:
        out = {"name": self.name, "status": self.status, "seconds": round(self.seconds, 4), "method": self.method,
               "queries": len(self.outcomes)}
        if self.detail:
            out["detail"] = self.detail
        unknown = [o.name for o in self.outcomes if o.status == UNKNOWN]
        if unknown:
            out["unknown_queries"] = unknown
        return out


def combine(statuses) -> str:
    statuses = list(statuses)
    if REFUTED in statuses:
        return REFUTED
    if UNKNOWN in statuses or not statuses:
        return UNKNOWN
    return PROVED


def lemma_items(model: ConstructedModel, name: str, unrolled_k: int = 4, ieee: bool = False) -> list[Query | Violation]:
    if name == "retrieval":
        return retrieval_queries(model, unrolled_k, ieee)
    if name == "gate_ffn":
        return gate_ffn_queries(model, ieee)
    if name == "readout":
        return readout_queries(model, ieee)
    raise KeyError(name)


def prove_lemma(model: ConstructedModel, circuit, name: str, timeout_s: float, unrolled_k: int = 4,
                on_query: Callable[[Outcome], None] | None = None, ieee: bool = False) -> LemmaResult:
    """``circuit``: the NormCircuit a Theorem 3.3 model was compiled from, which only ``embedding`` reads.
    ``ieee``: state the lemma in IEEE arithmetic (inf and NaN) rather than the paper's saturating F(e,s)."""
    start = time.perf_counter()
    if name == ORDER_LEMMA:
        violations, summary = order_independence_items(model)
        outcomes = [solve(v, timeout_s) for v in violations]
        status = combine([o.status for o in outcomes] + ([UNKNOWN] if summary["undecided"] else [PROVED]))
        detail = (f"{summary['dot_products']} distinct dot products, every partial sum exact; the largest is "
                  f"{summary['largest_partial_sum']:g}" if status == PROVED else
                  f"undecided: {summary['undecided'][:3]}" if status == UNKNOWN else None)
        return LemmaResult(name, status, time.perf_counter() - start, "exact enumeration of partial sums", outcomes,
                           detail=detail)
    if name == TABLE_LEMMA:
        violations = embedding_violations(model, circuit)
        outcomes = [solve(v, timeout_s) for v in violations] or [Outcome("embedding", "embedding", PROVED, 0.0)]
        return LemmaResult(name, combine(o.status for o in outcomes), time.perf_counter() - start,
                           "exhaustive table check", outcomes)
    outcomes = []
    for item in lemma_items(model, name, unrolled_k, ieee):
        outcome = solve(item, timeout_s)
        outcomes.append(outcome)
        if on_query:
            on_query(outcome)
    return LemmaResult(name, combine(o.status for o in outcomes), time.perf_counter() - start, "z3 (QF_FP)",
                       outcomes)


def composition(results: dict[str, LemmaResult], ieee: bool = False, mode: Mode = Mode.THM33) -> LemmaResult:
    """The argument over the lemmas. In IEEE arithmetic it first makes every order exact (``ORDER_ARGUMENT``),
    then runs the mode's induction; in CVP mode every query names a position, so no row averages."""
    names = composed_from(ieee)
    status = combine(results[n].status for n in names)
    if mode == Mode.CVP:
        detail = f"{ORDER_ARGUMENT} Then: {COMPOSITION_CVP}" if ieee else COMPOSITION_CVP
    else:
        detail = f"{ORDER_ARGUMENT} Then the induction on CoT steps: {INDUCTION_IEEE}" if ieee else COMPOSITION
    return LemmaResult("composition", status, 0.0, "induction over CoT steps from: " + ", ".join(names),
                       detail=detail)
