"""``retrieval``: every constructed head returns exactly the value at the position whose code equals its query.

The argument, each step a query over the head's actual weights:
1. *projection shape* (read off the arrays): query dim 2b and 2b+1 read only bit b of the query field, key dims
   only bit b of the key field, value dim d only column d of the value field.
2. *score induction* over bit pairs of the sequential dot product, with invariant
   I(S, m) = (m -> S = 0) and (not m -> S <= U), m = "every bit so far matched".
   U = min(T, the score right after a first mismatched pair), T from ``exp_table``, so [exp(S)] = 0 below U.
   (S <= T alone is not inductive: from S = -24, [[S + c] - c] can round back up to -16 when c is large; rounding
   is monotone, so bounding by the first-mismatch value is.) Base: I(+0, true). Step: one query per distinct
   tuple of per-pair weights, so its cost does not grow with k or the context length. Hence score = 0 iff the
   codes are equal, and [exp] maps it to 1, else to 0.
   In IEEE arithmetic (``ieee=True``) the score is instead shown exact: ``order_independence`` proves that no
   partial sum of q.k rounds, in any order, so the score is the exact sum of its bit pairs, and one query per
   distinct pair shape shows each pair adds exactly 0 when its bits match and at most T (< 0) when they differ.
   So the score is 0 on a match and <= T otherwise, whatever the kernel's order, again independent of k.
3. *softmax induction* over key positions (``formal.softmax``): Z and the numerator stay (0, 0) before the match
   and (1, v) after it, whatever the other values; so the output [num / Z] = v. For a query that matches many keys
   that all hold value 0 (the CVP 'NA' id), the numerator stays 0, and so does the output. In IEEE arithmetic
   also as torch computes it (max-subtracted) and as flash-style kernels do (online rescaling).
4. *value path*: [[x w_v] + b_v] = x on the value domain, and the output projection copies each head dim to its
   output field and adds exactly 0 to every other residual coordinate.
An unrolled query over the first ``unrolled_k`` bit pairs (symbolic positions, the full sequential sum) cross-checks
the induction, one for each distinct set of those pairs' weights (the heads that share them share the query).
"""
from __future__ import annotations

import numpy as np
import z3

from formal.exp_table import exp_facts
from formal.fp_theory import Z3Format, model_format
from formal.query import Query, Violation
from formal.residual import DOMAIN
from formal.softmax import softmax_queries
from formal.witness import Kind
from neural.config import Keys
from neural.construction.constructed import ConstructedModel, HeadPlan


def _head_rows(model: ConstructedModel, plan: HeadPlan, proj: str):
    rows, bias = model.head_slice(plan, proj)
    return rows, bias, Keys.attn(plan.layer, proj)


def _dim_maps(model, plan, proj: str, field: str):
    """Per head dim d: (weight on bit d//2 of ``field``, bias), or a Violation if the row reads anything else."""
    rows, bias, name = _head_rows(model, plan, proj)
    cols = model.layout.cols(field)
    k = model.code_bits
    out = []
    for d in range(rows.shape[0]):
        allowed = {int(cols[d // 2])} if d < 2 * k else set()
        stray = [int(c) for c in np.flatnonzero(rows[d]) if int(c) not in allowed]
        if stray:
            c = stray[0]
            return Violation(f"retrieval.shape[L{plan.layer}H{plan.head}]", "retrieval",
                             f"{Keys.weight(name)}[{plan.head * model.config.d_head + d}, {c}] = {rows[d, c]:g} makes "
                             f"{proj} dim {d} read residual column {c}, outside '{field}' bit {d // 2}",
                             {"layer": plan.layer, "head": plan.head, "weight": Keys.weight(name),
                              "index": [plan.head * model.config.d_head + d, c], "value": float(rows[d, c])})
        w = float(rows[d, cols[d // 2]]) if d < 2 * k else 0.0
        out.append((w, float(bias[d])))
    return out


def retrieval_queries(model: ConstructedModel, unrolled_k: int = 4, ieee: bool = False) -> list:
    fmt = model_format(model, ieee)
    facts = exp_facts(model.fmt.ebits, model.fmt.sbits)
    items: list = []
    if model.config.scale != 1.0:
        return [Violation("retrieval.scale", "retrieval", f"attention scale is {model.config.scale}, not 1",
                          {"scale": model.config.scale})]
    if facts.threshold is None:
        return [Violation("retrieval.exp", "retrieval", facts.margin_note, {})]
    T = fmt.val(facts.threshold)
    k = model.code_bits
    live = [p for p in model.heads if p.query_field is not None]
    unrolled: dict[tuple, list] = {}  # the first bit pairs' weights -> the heads that have them
    for plan in live:
        tag = f"L{plan.layer}H{plan.head}"
        qmap = _dim_maps(model, plan, "q", plan.query_field)
        kmap = _dim_maps(model, plan, "k", plan.key_field)
        bad = [m for m in (qmap, kmap) if isinstance(m, Violation)]
        if bad:
            items.append(bad[0])
            continue
        extra = [d for d in range(2 * k, len(qmap)) if qmap[d][1] * kmap[d][1] != 0]
        if extra:
            items.append(Violation(f"retrieval.shape[{tag}]", "retrieval",
                                   f"unused dim {extra[0]} adds the constant {qmap[extra[0]][1] * kmap[extra[0]][1]:g}",
                                   {"layer": plan.layer, "head": plan.head}))
            continue
        groups: dict[tuple, list[int]] = {}
        for b in range(k):
            groups.setdefault((qmap[2 * b], qmap[2 * b + 1], kmap[2 * b], kmap[2 * b + 1]), []).append(b)
        U = min([facts.threshold] + [fmt.simplify_value(_pair(fmt, fmt.zero, fmt.val(a), fmt.val(-a), *g))
                                     for g in groups for a in (1.0, -1.0)])
        for (q0, q1, k0, k1), bits in groups.items():
            step = _pair_exact if ieee else _score_step
            items.append(step(fmt, T if ieee else fmt.val(U), plan, tag, bits, q0, q1, k0, k1))
        u = min(unrolled_k, k)
        unrolled.setdefault((u, *qmap[:2 * u], *kmap[:2 * u]), []).append(plan)
    items += [_unrolled(fmt, T, plans, qmap_kmap[1:]) for qmap_kmap, plans in unrolled.items()]
    if not ieee:
        items.append(_score_base(fmt, T))
    items += softmax_queries(fmt, T, ieee)
    items += _value_paths(model, fmt, live)
    return items


def _pm1(fmt: Z3Format, name: str):
    s = fmt.var(name)
    return s, fmt.in_set(s, (-1.0, 1.0))


def _pair(fmt: Z3Format, S, sp, sj, q0, q1, k0, k1):
    """The running score after one more bit pair: [[S + [q_2b k_2b]] + [q_2b+1 k_2b+1]]."""
    def proj(s, wb):
        return fmt.dot([s], [wb[0]], wb[1])

    S = fmt.add(S, fmt.mul(proj(sp, q0), proj(sj, k0)))
    return fmt.add(S, fmt.mul(proj(sp, q1), proj(sj, k1)))


def _invariant(fmt: Z3Format, T, S, matched):
    return z3.And(fmt.finite(S), z3.Implies(matched, fmt.eq(S, fmt.zero)), z3.Implies(z3.Not(matched), z3.fpLEQ(S, T)))


def _score_base(fmt: Z3Format, T) -> Query:
    return Query("retrieval.score_base", "retrieval", z3.Not(_invariant(fmt, T, fmt.zero, z3.BoolVal(True))),
                 kind=Kind.SCORE_BASE)


def _score_step(fmt, U, plan, tag, bits, q0, q1, k0, k1) -> Query:
    sp, dp = _pm1(fmt, "query_bit")
    sj, dj = _pm1(fmt, "key_bit")
    S = fmt.var("score_so_far")
    m = z3.Bool("matched_so_far")
    S2 = _pair(fmt, S, sp, sj, q0, q1, k0, k1)
    m2 = z3.And(m, sp == sj)
    formula = z3.And(dp, dj, _invariant(fmt, U, S, m), z3.Not(_invariant(fmt, U, S2, m2)))
    span = f"bit {bits[0]}" if len(bits) == 1 else f"bits {bits[0]}..{bits[-1]}" if bits == list(
        range(bits[0], bits[-1] + 1)) else f"{len(bits)} bits"
    return Query(f"retrieval.score_step[{tag} {span}]", "retrieval", formula,
                 {"query_bit": sp, "key_bit": sj, "score_so_far": S, "matched_so_far": m, "score_after": S2},
                 {"layer": plan.layer, "head": plan.head, "bit": bits[0], "bits": bits,
                  "bound_after_mismatch": fmt.to_float(U)}, Kind.SCORE_STEP)


def _pair_exact(fmt, U, plan, tag, bits, q0, q1, k0, k1) -> Query:
    """IEEE: one bit pair from an exact 0 adds exactly 0 on a match and a finite value <= U (< 0) on a mismatch.
    With ``order_independence`` (every partial sum exact) the score is the exact sum of its pairs, so it is 0
    when every bit matches and <= U otherwise, in any summation order."""
    sp, dp = _pm1(fmt, "query_bit")
    sj, dj = _pm1(fmt, "key_bit")
    P = _pair(fmt, fmt.zero, sp, sj, q0, q1, k0, k1)
    claim = z3.If(sp == sj, fmt.eq(P, fmt.zero), z3.And(fmt.finite(P), z3.fpLEQ(P, U)))
    span = f"bit {bits[0]}" if len(bits) == 1 else f"{len(bits)} bits"
    return Query(f"retrieval.pair[{tag} {span}]", "retrieval", z3.And(dp, dj, z3.Not(claim)),
                 {"query_bit": sp, "key_bit": sj, "pair_score": P},
                 {"layer": plan.layer, "head": plan.head, "bit": bits[0], "bits": bits,
                  "bound_after_mismatch": fmt.to_float(U)}, Kind.PAIR)


def _unrolled(fmt, T, plans: list[HeadPlan], weights: tuple) -> Query:
    """One query for every head whose first ``u`` bit pairs have these weights (in the constructions, every head),
    as the step queries are one per distinct weight tuple: the formula is the same, whichever head it names."""
    u = len(weights) // 4
    qmap, kmap = weights[:2 * u], weights[2 * u:]
    sps, spd = zip(*[_pm1(fmt, f"query_bit{b}") for b in range(u)])
    sjs, sjd = zip(*[_pm1(fmt, f"key_bit{b}") for b in range(u)])
    S = fmt.zero
    for b in range(u):
        S = _pair(fmt, S, sps[b], sjs[b], qmap[2 * b], qmap[2 * b + 1], kmap[2 * b], kmap[2 * b + 1])
    equal = z3.And(*[a == b for a, b in zip(sps, sjs)])
    claim = z3.If(equal, fmt.eq(S, fmt.zero), z3.And(fmt.finite(S), z3.fpLEQ(S, T)))
    witness = {f"query_bit{b}": sps[b] for b in range(u)} | {f"key_bit{b}": sjs[b] for b in range(u)} | {"score": S}
    tags = ",".join(f"L{p.layer}H{p.head}" for p in plans)
    return Query(f"retrieval.unrolled[{tags} k={u}]", "retrieval", z3.And(*spd, *sjd, z3.Not(claim)), witness,
                 {"layer": plans[0].layer, "head": plans[0].head, "bits": list(range(u)),
                  "heads": [[p.layer, p.head] for p in plans]}, Kind.UNROLLED)


def _value_paths(model, fmt: Z3Format, live) -> list:
    """Value dims copy their column; attn.o copies each head dim to its output field and adds 0 elsewhere."""
    cfg = model.config
    items: list = []
    x = fmt.var("value_in")
    for plan in live:
        rows, bias, name = _head_rows(model, plan, "v")
        vcols = model.layout.cols(plan.value_field)
        for d in range(rows.shape[0]):
            allowed = {int(vcols[d])} if d < len(vcols) else set()
            stray = [int(c) for c in np.flatnonzero(rows[d]) if int(c) not in allowed]
            if stray:
                items.append(Violation(f"retrieval.value[L{plan.layer}H{plan.head}]", "retrieval",
                                       f"{Keys.weight(name)} row {plan.head * cfg.d_head + d} reads column {stray[0]}",
                                       {"layer": plan.layer, "head": plan.head}))
                break
        else:
            n = len(vcols)
            got = [fmt.dot([x], [float(rows[d, vcols[d]])], float(bias[d])) for d in range(n)]
            bad = z3.Or(*[z3.Not(fmt.eq(g, x)) for g in got])
            items.append(Query(f"retrieval.value[L{plan.layer}H{plan.head}]", "retrieval",
                               z3.And(fmt.in_set(x, DOMAIN), bad), {"value_in": x},
                               {"layer": plan.layer, "head": plan.head}, Kind.VALUE))
    for layer in sorted({p.layer for p in model.heads}):
        W, b = model.linear(Keys.attn(layer, "o"))
        source = {}  # residual column -> head dim it must receive
        for plan in (p for p in live if p.layer == layer):
            for d, col in enumerate(model.layout.cols(plan.output_field)):
                source[int(col)] = plan.head * cfg.d_head + d
        # one query per distinct row shape: which weights it has, which of them is its source, its bias. Rows of
        # one shape make the same claim about different head dims, so the lemma does not grow with the width.
        shapes: dict[tuple, int] = {}
        for r in range(W.shape[0]):
            cols = np.flatnonzero(W[r])
            if not cols.size and b[r] == 0 and r not in source:
                continue  # adds +0 exactly
            shape = (tuple((float(W[r, c]), int(c) == source.get(r)) for c in cols), float(b[r]), r in source)
            shapes.setdefault(shape, r)
        for n, ((terms, bias, has_source), r) in enumerate(shapes.items()):
            h = [fmt.var(f"head_dim{j}") for j in range(len(terms))]
            wanted = [fmt.var("source_dim")] if has_source and not any(is_src for _, is_src in terms) else []
            dom = z3.And(*[fmt.in_set(v, DOMAIN) for v in h + wanted])
            out = fmt.dot(h, [w for w, _ in terms], bias)
            target = next((v for v, (_, is_src) in zip(h, terms) if is_src), wanted[0] if wanted else fmt.zero)
            items.append(Query(f"retrieval.output[L{layer} row shape {n}]", "retrieval",
                               z3.And(dom, z3.Not(fmt.eq(out, target))),
                               {f"head_dim{j}": v for j, v in enumerate(h)},
                               {"layer": layer, "row": r}, Kind.OUTPUT))
    return items
