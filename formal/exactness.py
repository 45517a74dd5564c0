"""``order_independence``: no dot product of the construction ever rounds, so every summation order gives one sum.

A kernel adds a dot product's terms in an order it chooses: left to right, blocked, pairwise, or fused (FMA). Every
intermediate it forms is [A + B] or [a*b + C], where A, B and C are sums over disjoint subsets of the terms. If the
exact sum over *every* subset of the terms is representable (finite, on the grid), each of those roundings is
exact, by induction over the summation tree, so every order computes the exact real sum. This module decides that
premise for every dot product the model computes, with every input in its domain:

- ``tok + pos``, per residual column, over every token and position;
- q, k, v, attn.o, fc1, fc2 and the unembedding, row by row, with residual inputs in {-1, 0, 1} (the domain the
  other lemmas establish), head outputs in {-1, 0, 1}, and hidden units over their own reachable values;
- the residual updates x + attn(x) and x + ffn(x);
- each head's score q.k over its dims, the products ranging over what q and k can be.

Reachable subset sums are enumerated exactly, as integers over a common power-of-two denominator, with a witness
subset for each, so a refutation names the terms whose sum leaves the grid. The softmax's own sums are the softmax
lemmas' business (``formal.softmax``). No solver is needed: this is a finite, exact computation, like the table
check of ``embedding``.
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from formal.query import Violation
from formal.residual import DOMAIN
from formal.witness import Kind
from neural.config import Keys
from neural.construction.constructed import ConstructedModel
from neural.construction.fp import FPFormat
from neural.construction.tables import TableProgram, unique_rows

MAX_SUMS = 1 << 16  # reachable sums enumerated per dot product before falling back to a magnitude bound
LEMMA = "order_independence"


@dataclass(frozen=True)
class DotProduct:
    """Terms, each a set of values it can take (a term may also be left out: that is the subset), plus a name."""

    name: str
    terms: tuple[frozenset, ...]


@dataclass(frozen=True)
class Checked:
    status: str  # proved | refuted | unknown
    largest: Fraction  # the largest |partial sum| seen (or bounded)
    witness: dict | None = None


def _scaled(values: list[frozenset]) -> tuple[list[list[int]], int]:
    """Every value as an integer over one denominator 2^E (all floats are dyadic)."""
    fracs = [[Fraction(v) for v in vs if v != 0] for vs in values]
    E = max((f.denominator.bit_length() - 1 for vs in fracs for f in vs), default=0)
    return [[int(f * (1 << E)) for f in vs] for vs in fracs], E


def representable(M: int, E: int, fmt: FPFormat) -> bool:
    """Is M / 2^E on the grid of ``fmt`` and finite? (sbits significant bits, exponent within range)"""
    if M == 0:
        return True
    m = abs(M)
    low = (m & -m).bit_length() - 1
    m >>= low
    exp2 = low - E  # value = m * 2^exp2 with m odd
    lead = m.bit_length() - 1 + exp2
    return m.bit_length() <= fmt.sbits and lead <= fmt.bias and exp2 >= fmt.emin - (fmt.sbits - 1)


def check(dp: DotProduct, fmt: FPFormat) -> Checked:
    terms, E = _scaled(list(dp.terms))
    reached: dict[int, tuple | None] = {0: None}  # sum -> (previous sum, term index, term value)
    for i, values in enumerate(terms):
        if not values:
            continue
        new = {}
        for r in reached:
            for t in values:
                s = r + t
                if s not in reached and s not in new:
                    new[s] = (r, i, t)
        reached.update(new)
        if len(reached) > MAX_SUMS:
            return _bounded(terms, E, fmt)
    for s in reached:
        if not representable(s, E, fmt):
            subset = []
            node = s
            while reached[node] is not None:
                prev, i, t = reached[node]
                subset.append((i, float(Fraction(t, 1 << E))))
                node = prev
            return Checked("refuted", Fraction(abs(s), 1 << E),
                           {"dot_product": dp.name, "partial_sum": float(Fraction(s, 1 << E)),
                            "terms": {str(i): v for i, v in sorted(subset)},
                            "why": _why(Fraction(s, 1 << E), fmt)})
    return Checked("proved", Fraction(max(abs(s) for s in reached), 1 << E))


def _bounded(terms, E, fmt) -> Checked:
    """Too many sums to list: every partial sum is a multiple of q = 2^v (v the lowest set bit of any term) of
    magnitude <= the sum of the largest |term|s, and such multiples are on the grid when they stay within
    2^sbits * q and B, with q no finer than the smallest subnormal."""
    low = min(((abs(t) & -abs(t)).bit_length() - 1 for vs in terms for t in vs), default=0)
    top = sum(max(abs(t) for t in vs) for vs in terms if vs)
    q = Fraction(1 << low, 1 << E)
    largest = Fraction(top, 1 << E)
    ok = largest <= q * fmt.exact_integers and largest <= Fraction(fmt.max_value) and q >= Fraction(fmt.min_subnormal)
    return Checked("proved" if ok else "unknown", largest)


def _why(value: Fraction, fmt: FPFormat) -> str:
    if abs(value) > Fraction(fmt.max_value):
        return f"|{float(value):g}| > B = {fmt.max_value:g}: IEEE overflows to inf"
    return f"{float(value)!r} needs more than {fmt.sbits} significant bits: the addition rounds"


# ---- the dot products of a construction ------------------------------------------------------------------------

def _column_values(table, chunk: int = 1 << 15) -> list[frozenset]:
    """The distinct values of each column, a block of rows at a time: a construction's tables hold a handful of
    distinct values, so one comparison pass per value finds the columns holding it. A table that is a program
    (``neural.construction.tables``) lists them from its fills."""
    if isinstance(table, TableProgram):
        return table.column_values()
    seen = [{0.0} for _ in range(table.shape[1])]
    for start in range(0, table.shape[0], chunk):
        block = table[start:start + chunk]
        for v in np.unique(block).tolist():
            for c in np.flatnonzero(np.any(block == v, axis=0)):
                seen[c].add(v)
    return [frozenset(s) for s in seen]


def _rows(W: np.ndarray, b: np.ndarray, domains: list[frozenset], chunk: int = 8192) -> dict[tuple, int]:
    """Each row's terms over its inputs' domains, plus the bias, in a canonical form; rows with the same terms are
    checked once. Returns {canonical terms: first row}. Over one domain symmetric about 0 (the residual's), a row's
    terms depend only on its sorted |weights|, so large tables (the unembedding) are grouped with numpy."""
    signatures: dict[tuple, int] = {}
    symmetric = len(set(domains)) == 1 and all(-x in domains[0] for x in domains[0])
    if isinstance(W, TableProgram):  # one row per class of rows alike (under |.| where the domain is symmetric)
        _, first = (W.magnitudes() if symmetric else W).distinct_rows(None, b)
        for r in first.tolist():
            row = W.take([r])
            signatures.setdefault(_canonical(_row_key(row, b[r:r + 1], 0, domains)), r)
        return signatures
    live = np.flatnonzero(np.any(W != 0, axis=0))
    for start in range(0, W.shape[0], chunk):
        block, bias = W[start:start + chunk, live], b[start:start + chunk]
        if symmetric:
            _, first = unique_rows(np.c_[np.sort(np.abs(block), axis=1), bias])
            rows = (start + int(i) for i in first)
        else:
            rows = range(start, start + block.shape[0])
        for r in rows:
            signatures.setdefault(_canonical(_row_key(W, b, r, domains)), r)
    return signatures


def _canonical(key):
    terms, bias = key
    return tuple(sorted((frozenset(w * x for x in dom) for w, dom in terms), key=lambda s: sorted(s))), bias


def _dot(name: str, canon) -> DotProduct:
    terms, bias = canon
    return DotProduct(name, tuple(terms) + ((frozenset({bias}),) if bias != 0 else ()))


def _row_key(W, b, r, domains):
    """A row's (weight, input domain) pairs and its bias, as exact rationals: every value derived from them (a
    projection's range, a hidden unit's) is then exact too."""
    cols = np.flatnonzero(W[r])
    return tuple(sorted((Fraction(float(W[r, c])), domains[c]) for c in cols)), Fraction(float(b[r]))


class TooManyValues(Exception):
    """A row can take more values than this lemma enumerates; the lemma is then undecided, never proved."""


def _full_values(canon) -> frozenset:
    """What the whole row can be (every term present, each at one of its values), then + bias."""
    terms, bias = canon
    sums = {Fraction(0)}
    for values in terms:
        sums = {s + v for s in sums for v in values}
        if len(sums) > MAX_SUMS:
            raise TooManyValues
    return frozenset(s + bias for s in sums)


def dot_products(model: ConstructedModel) -> list[DotProduct]:
    """Every distinct dot product the model computes, each with the values its terms can take."""
    residual = frozenset(Fraction(x) for x in DOMAIN)
    d = model.config.d_model
    res_dom = [residual] * d
    out: list[DotProduct] = []
    tok, pos = (_column_values(model.table(name)) for name in (Keys.TOK_EMB, Keys.POS_EMB))
    pairs = {(tok[c], pos[c]) for c in range(d)}
    out += [DotProduct(f"{Keys.TOK_EMB} + {Keys.POS_EMB}", (a, b)) for a, b in pairs]
    out.append(DotProduct("residual + update", (residual, residual)))
    cfg = model.config
    for layer in range(cfg.n_layers):
        full = {}
        for proj in "qkv":
            W, b = model.linear(Keys.attn(layer, proj))
            sigs = _rows(W, b, res_dom)
            out += [_dot(f"{Keys.weight(Keys.attn(layer, proj))} row {r}", s) for s, r in sigs.items()]
            full[proj] = [_full_values(_canonical(_row_key(W, b, r, res_dom))) for r in range(W.shape[0])]
        for head in range(cfg.n_heads):
            dims = range(head * cfg.d_head, (head + 1) * cfg.d_head)
            products = tuple(frozenset(q * k for q in full["q"][i] for k in full["k"][i]) for i in dims)
            out.append(DotProduct(f"score of L{layer}H{head} (q.k over {cfg.d_head} dims)", products))
        W, b = model.linear(Keys.attn(layer, "o"))
        out += [_dot(f"{Keys.weight(Keys.attn(layer, 'o'))} row {r}", s)
                for s, r in _rows(W, b, [residual] * W.shape[1]).items()]
        W1, b1 = model.linear(Keys.ffn(layer, "fc1"))
        out += [_dot(f"{Keys.weight(Keys.ffn(layer, 'fc1'))} row {r}", s) for s, r in _rows(W1, b1, res_dom).items()]
        hidden = [frozenset(max(v, Fraction(0)) for v in _full_values(_canonical(_row_key(W1, b1, u, res_dom))))
                  for u in range(W1.shape[0])]
        W2, b2 = model.linear(Keys.ffn(layer, "fc2"))
        out += [_dot(f"{Keys.weight(Keys.ffn(layer, 'fc2'))} row {r}", s) for s, r in _rows(W2, b2, hidden).items()]
    W, b = model.table(Keys.weight(Keys.HEAD)), model.weights[Keys.bias(Keys.HEAD)]
    out += [_dot(f"{Keys.weight(Keys.HEAD)} row {r}", s) for s, r in _rows(W, b, res_dom).items()]
    return out



def order_independence_items(model: ConstructedModel) -> tuple[list[Violation], dict]:
    """Violations (a dot product with a partial sum off the grid, or too many to decide), and a summary."""
    fmt = model.fmt
    items: list[Violation] = []
    largest, count, unknown = Fraction(0), 0, []
    try:
        products = dot_products(model)
    except TooManyValues:
        return [], {"dot_products": 0, "largest_partial_sum": 0.0,
                    "undecided": ["a projection takes more values than the enumeration allows"]}
    for dp in products:
        count += 1
        result = check(dp, fmt)
        largest = max(largest, result.largest)
        if result.status == "refuted":
            items.append(Violation(f"{LEMMA}[{dp.name}]", LEMMA,
                                   f"the partial sum {result.witness['partial_sum']:g} of {dp.name} is not exact: "
                                   f"{result.witness['why']}", dict(result.witness), Kind.PARTIAL_SUM))
        elif result.status == "unknown":
            unknown.append(dp.name)
    return items, {"dot_products": count, "largest_partial_sum": float(largest), "undecided": unknown}
