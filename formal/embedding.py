"""``embedding``: the token and position tables hold exactly the codes the layout promises.

This lemma is an exhaustive comparison of finite tables; no solver is needed for a concrete table. A table that is
an array is compared entry by entry; one that is a program (``neural.construction.tables``: CVP's) is compared with
the lemma's own restatement, also a program, piece by piece, so its cost does not grow with N. It is what lets the
symbolic lemmas speak of "the query field holds sbin(p)" instead of concrete rows, so the solver's work depends on
the code width k and never on the circuit or context size.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from formal.query import Violation
from grammar.codes import sbin
from grammar.ir import Mode
from neural import cvp
from neural.config import Keys
from neural.construction.constructed import ConstructedModel
from neural.construction.tables import (
    Fill,
    Rows,
    TableProgram,
    affine_code,
    first_difference,
    nonzero_columns,
    rows_of,
    take_rows,
)

CVP_TYPE_NAMES = ("TRUE", "FALSE", "AND", "OR", "NOT")
# What the CVP construction's fields hold, restated here rather than read from neural.cvp's schedule: a proof that
# reused the builder's own position arithmetic could not see an error in it.
CVP_TOKEN_FIELDS = ("type", "in_code", "idq", "value")
CVP_POSITION_FIELDS = ("pos", "q_type", "q_in", "q_prev", "role_id", "role_va", "role_vg")


@dataclass(frozen=True)
class CVPRows:
    """Vocabulary rows by meaning, found by the tokens' names (not by the construction's own numbering)."""

    types: dict[str, int]
    ids: np.ndarray  # ids[j]: the prompt token gj (ids[0] unused)
    refs: np.ndarray  # refs[j]: the CoT token @j, refs[0] = NA
    values: np.ndarray  # values[v]: the token v in {0, 1}
    others: np.ndarray  # every row that is neither a reference nor a value


@functools.lru_cache(maxsize=1)  # embedding and readout both ask, for the same model
def cvp_rows(model: ConstructedModel) -> CVPRows:
    vocab, N = model.vocab, model.max_gates
    j = np.arange(1, N + 1)
    if isinstance(vocab, cvp.Vocabulary):  # its own map from names to rows, read from its runs
        row, numbered = vocab.index, vocab.rows
    else:
        index = {tok: i for i, tok in enumerate(vocab)}
        row = index.__getitem__

        def numbered(prefix, numbers):
            return np.array([index[f"{prefix}{n}"] for n in numbers], dtype=np.int64)
    ids = np.r_[-1, numbered("g", j)]
    refs = np.r_[row("NA"), numbered("@", j)]
    values = np.array([row("0"), row("1")])
    others = np.flatnonzero(all_but(len(vocab), np.r_[refs, values]))
    return CVPRows({t: row(t) for t in CVP_TYPE_NAMES}, ids, refs, values, others)


def all_but(n: int, rows) -> np.ndarray:
    """A mask of the n rows without ``rows``: a set difference in O(n), where np.setdiff1d sorts."""
    mask = np.ones(n, dtype=bool)
    mask[np.asarray(rows, dtype=np.int64)] = False
    return mask


class _Checker:
    def __init__(self, model):
        self.model = model
        self.violations: list[Violation] = []

    def expect(self, table: str, rows, field: str, want, what: str, token=None) -> None:
        """``rows``: a slice, row indices (``want`` one row each, or one for all), or a boolean mask over every
        row (``want`` one row for all). A mask compares the field of every row in place, with no copy of the rows
        it selects: the defaults of an 8N-row position table are most of its rows."""
        if self.violations:
            return  # the first violation is the counterexample; the rest would repeat it
        arr = self.model.weights[table]
        cols = self.model.layout.cols(field)  # a field is a contiguous run of columns: read it as a view
        view = arr[:, cols[0]:cols[-1] + 1]  # the field's columns first: rows are then copied field-wide only
        mask = isinstance(rows, np.ndarray) and rows.dtype == bool
        if mask:
            index = np.flatnonzero(rows & np.any(view != np.asarray(want, dtype=view.dtype), axis=1))[:1]
        else:
            index = np.arange(arr.shape[0])[rows] if isinstance(rows, slice) else np.atleast_1d(rows)
        got = view[rows] if isinstance(rows, slice) else view[index]
        want = np.broadcast_to(np.asarray(want, dtype=got.dtype), got.shape)
        bad = np.argwhere(got != want)
        if bad.size:
            i, c = bad[0]
            row = int(index[i])
            self.violations.append(Violation(
                "embedding", "embedding",
                f"{table}[{row}, {int(cols[c])}] = {got[i, c]:g}, but {what} needs {want[i, c]:g} "
                f"(field '{field}', entry {int(c)})",
                {"table": table, "row": row, "column": int(cols[c]), "field": field, "got": float(got[i, c]),
                 "expected": float(want[i, c]), **({"token": token(row)} if token else {})}))


    def expect_rows(self, table: str, field: str, fills: list[tuple[object, object]], what: str,
                    default_what: str | None = None, within=None) -> None:
        """The field of every row of ``table`` holds what ``fills`` paint over zeros, each (rows, a constant or
        ``affine_code``), a later fill winning. Compared as programs where the table is one (no row listed,
        ``tables.first_difference``), else a block of rows at a time. ``default_what`` names a difference on a row
        that only a fill over every row (a default) covers; ``within``: compare these rows only. Rows of the token
        table and the unembedding are named by their token too."""
        if self.violations:
            return
        cols = self.model.layout.cols(field)
        actual = self.model.table(table)
        rows = actual.shape[0]
        fills = [(rows_of(r), v) for r, v in fills]
        expected = TableProgram((rows, cols.size), "<f8", tuple(Fill.of(np.arange(cols.size), r, v) for r, v in fills))
        diff = first_difference(actual, int(cols[0]), int(cols[-1]) + 1, expected, within)
        if diff is None:
            return
        scheduled = any(r.count < rows and r.positions(np.array([diff.row]))[0][0] for r, _ in fills)
        said = what if scheduled or default_what is None else default_what
        token = {} if table == Keys.POS_EMB else {"token": self.model.vocab[diff.row]}
        self.violations.append(Violation(
            "embedding", "embedding",
            f"{table}[{diff.row}, {int(cols[diff.column])}] = {diff.got:g}, but {said} needs {diff.want:g} "
            f"(field '{field}', entry {diff.column})",
            {"table": table, "row": diff.row, "column": int(cols[diff.column]), "field": field, "got": diff.got,
             "expected": diff.want, **token}))


def _common(model, ck: _Checker) -> None:
    both = np.flatnonzero(nonzero_columns(model.table(Keys.TOK_EMB)) & nonzero_columns(model.table(Keys.POS_EMB)))
    if both.size:
        ck.violations.append(Violation("embedding", "embedding",
                                       f"column {int(both[0])} is set in both embedding tables, so [tok + pos] "
                                       f"may round", {"column": int(both[0])}))
    written = [p.output_field for p in model.heads if p.output_field] + [model.ffn.output_field]
    for field in written:
        ck.expect_rows(Keys.TOK_EMB, field, [], "a field a layer writes to")
        ck.expect_rows(Keys.POS_EMB, field, [], "a field a layer writes to")
    k = model.code_bits
    length = model.config.max_len
    if length > 2 ** k:
        ck.violations.append(Violation("embedding", "embedding", f"{length} positions need more "
                                       f"than {k} code bits", {"max_len": length, "code_bits": k}))
    ck.expect_rows(Keys.POS_EMB, "pos", [(Rows(0, 1, length), affine_code([0, 1]))], "sbin(position)")


def embedding_violations(model: ConstructedModel, circuit=None) -> list[Violation]:
    """``circuit``: the NormCircuit a Theorem 3.3 model was compiled from (CVP models need none)."""
    ck = _Checker(model)
    _common(model, ck)
    k = model.code_bits
    if model.mode == Mode.THM33:
        n = circuit.n_inputs
        ck.expect(Keys.TOK_EMB, [0, 1], "tok", [[0.0], [1.0]], "the token's bit")
        gates = circuit.gates
        rows = n - 1 + np.arange(len(gates))  # position n + t - 1 announces gate t
        ops = np.array([g.op for g in gates], dtype=object)
        onehot = np.stack([ops == op for op in model.ffn.type_ops], axis=1).astype(np.float64)
        ck.expect(Keys.POS_EMB, rows, "type", onehot, "the one-hot type of the gate announced there")
        ck.expect(Keys.POS_EMB, rows, "pred1", sbin([g.a for g in gates], k), "sbin(first input of that gate)")
        ck.expect(Keys.POS_EMB, rows, "pred2", sbin([g.b for g in gates], k), "sbin(second input of that gate)")
        return ck.violations
    return _cvp(model, ck)


def _cvp(model: ConstructedModel, ck: _Checker) -> list[Violation]:
    """Gate g's prompt slots sit at 4(g-1)+{0,1,2,3}, its CoT tokens at C(g)+{0,1,2} with C(g) = 4N+1+4(g-1);
    every query that names no slot names position 0, and each position has at most one role flag."""
    rows = cvp_rows(model)
    N, k = model.max_gates, model.code_bits
    T, P = Keys.TOK_EMB, Keys.POS_EMB
    if 8 * N >= 2 ** k:
        ck.violations.append(Violation("embedding", "embedding", f"position {8 * N} (@{N}'s value query) needs more "
                                       f"than {k} bits", {"max_gates": N, "code_bits": k}))
    for field in CVP_TOKEN_FIELDS:  # each field lives in one table, so [tok + pos] adds an exact 0
        ck.expect_rows(P, field, [], "a token field (zero in the position table)")
    for field in CVP_POSITION_FIELDS[1:]:
        ck.expect_rows(T, field, [], "a position field (zero in the token table)")
    types = [([rows.types[t]], np.eye(len(CVP_TYPE_NAMES))[i]) for i, t in enumerate(CVP_TYPE_NAMES)]
    ck.expect_rows(T, "type", types, "the one-hot of its gate type", "no type on a token that is no gate type")
    j = np.arange(1, N + 1)
    words = Rows(0, 1, len(model.vocab))
    ck.expect_rows(T, "in_code", [(words, sbin(0, k)), (rows.ids[j], affine_code(j))],
                   "sbin(j) on the prompt id gj", "id 0 (NA, and every token that is no prompt id)")
    cot = lambda g, slot: 4 * N + 1 + 4 * (g - 1) + slot  # noqa: E731
    ck.expect_rows(T, "idq", [(words, sbin(0, k)), (rows.refs[j], affine_code(cot(j, 3)))],
                   "the position of v(j), C(j)+3, on @j",
                   "position 0 (value 0) on every token that is no @j: NA's value is 0, and no other token names one")
    ck.expect_rows(T, "value", [([rows.values[1]], 1.0)], "value 1 on the token 1", "value 0")
    length = model.config.max_len
    if length != 8 * N:
        ck.violations.append(Violation("embedding", "embedding", f"max_len {length}, but a model for {N} gates "
                                       f"reads 8N = {8 * N} positions", {"max_len": length, "max_gates": N}))
        return ck.violations
    # Per field, the rows g = 1..N (m = g - 1 on each progression) and what they hold; every other row holds the
    # default: sbin(0) for a query, 0 for a flag. Written as progressions in m, so a table that is a program is
    # compared without listing its 8N rows.
    before_a, at_a = Rows(cot(1, 0) - 1, 4, N), Rows(cot(1, 0), 4, N)  # @a_g next; v(a_g) next
    before_b, before_v = Rows(cot(1, 1), 4, N), Rows(cot(1, 2), 4, N)  # @b_g next; v(g) next
    schedule = {
        "q_in": [(before_a, affine_code([1, 5])), (before_b, affine_code([2, 6]))],  # slots 4(g-1)+1, 4(g-1)+2
        "q_type": [(before_v, affine_code([0, 4]))],  # v(g) next: its type slot 4(g-1) ...
        "q_prev": [(before_v, affine_code([cot(1, 1), cot(2, 1)]))],  # ... and the token before, v(a_g)
        "role_id": [(before_a, 1.0), (before_b, 1.0)],
        "role_va": [(at_a, 1.0)],
        "role_vg": [(before_v, 1.0)],
    }
    for field, scheduled in schedule.items():
        default = [(Rows(0, 1, length), sbin(0, k))] if field.startswith("q_") else []
        ck.expect_rows(P, field, default + scheduled, f"the CVP schedule's {field}",
                       f"the CVP schedule's {field} (position 0, or no role, where nothing is scheduled)")
    _check_head_rows(model, rows, ck)
    return ck.violations


def _check_head_rows(model, rows: CVPRows, ck: _Checker) -> None:
    """The readout's shape: row NA / @j is sbin(0) / sbin(j) on g_in and one shared tail (NA's weights outside g_in
    on every id row, all after it, and one bias); no other row reads g_in. ``readout`` proves the rest
    symbolically."""
    if ck.violations:
        return
    H = Keys.weight(Keys.HEAD)
    W, b = model.table(H), model.weights[Keys.bias(Keys.HEAD)]
    code = model.layout.cols("g_in")
    k, N = model.code_bits, model.max_gates
    refs = rows.refs
    ck.expect_rows(H, "g_in", [([refs[0]], sbin(0, k)), (refs[1:], affine_code(np.arange(1, N + 1)))],
                   "the readout shape: sbin(j) on g_in of the id row @j, sbin(0) on NA's",
                   "the readout shape: no weight on g_in outside the id rows")
    tail = take_rows(W, [refs[0]])[0]
    for name, start, size in model.layout.fields:
        if name != "g_in" and N:
            ck.expect_rows(H, name, [(refs[1:], tail[start:start + size])],
                           "the readout shape: NA's weights outside g_in on every id row", within=[refs[1:]])
    other_bias = np.flatnonzero(b[refs] != b[refs[0]])
    tail_before = np.any((tail != 0) & (np.arange(tail.size) < code[0]))
    found = [(int(refs[other_bias[0]]) if other_bias.size else None, "one bias for every id row"),
             (int(refs[0]) if tail_before else None, "the id rows' weights outside g_in come after it")]
    for row, what in found:
        if row is not None and not ck.violations:
            ck.violations.append(Violation("embedding", "embedding",
                                           f"head row {row} ({model.vocab[row]}) breaks the readout shape: {what}",
                                           {"table": H, "row": row, "token": model.vocab[row]}))
