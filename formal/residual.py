"""The residual stream of a constructed model, as solver variables.

Every residual coordinate of a construction holds -1, 0 or 1 (codes are +-1, flags and bits 0 or 1). A lemma fixes
the coordinates it speaks about and leaves every other coordinate the weights read free in that domain, so a
stray weight is refuted with a concrete residual rather than assumed away.
"""
from __future__ import annotations

from formal.fp_theory import Z3Format

DOMAIN = (-1.0, 0.0, 1.0)


def symbolic_residual(fmt: Z3Format, columns, fixed: dict[int, object]):
    """Values for ``columns``: fixed ones as given, the rest free in DOMAIN. Returns (values by column, domain
    constraints, the free variables by name)."""
    xs, dom, free = {}, [], {}
    for c in columns:
        if c in fixed:
            xs[c] = fixed[c]
        else:
            xs[c] = fmt.var(f"residual{c}")
            dom.append(fmt.in_set(xs[c], DOMAIN))
            free[f"residual{c}"] = xs[c]
    return xs, dom, free
