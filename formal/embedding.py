"""``embedding``: the token and position tables hold exactly the codes the layout promises.

This lemma is an exhaustive comparison of finite tables, entry by entry; no solver is needed for a concrete
table. It is what lets the symbolic lemmas speak of "the query field holds sbin(p)" instead of concrete rows, so
the solver's work depends on the code width k and never on the circuit or context size.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from formal.query import Violation
from grammar.codes import sbin
from neural.config import Keys
from neural.constructed import ConstructedModel

CVP_TYPE_NAMES = ("TRUE", "FALSE", "AND", "OR", "NOT")


@dataclass(frozen=True)
class CVPRows:
    """Vocabulary rows by meaning, found by the tokens' names (not by the construction's own numbering)."""

    na: int
    sep: int
    types: dict[str, int]
    ids: np.ndarray  # ids[j]: the row of gate id j (ids[0] unused)
    cot: np.ndarray  # cot[j, v]: the row of g{j}={v} (cot[0] unused)
    non_cot: np.ndarray


@functools.lru_cache(maxsize=1)  # embedding and readout both ask, for the same model
def cvp_rows(model: ConstructedModel) -> CVPRows:
    index = {tok: i for i, tok in enumerate(model.vocab)}
    N = model.max_gates
    ids = np.array([-1] + [index[str(j)] for j in range(1, N + 1)])
    cot = np.array([[-1, -1]] + [[index[f"g{j}=0"], index[f"g{j}=1"]] for j in range(1, N + 1)])
    non_cot = np.setdiff1d(np.arange(len(model.vocab)), cot[1:].ravel())
    return CVPRows(index["NA"], index["SEP"], {t: index[t] for t in CVP_TYPE_NAMES}, ids, cot, non_cot)


class _Checker:
    def __init__(self, model):
        self.model = model
        self.violations: list[Violation] = []

    def expect(self, table: str, rows, field: str, want, what: str, token=None) -> None:
        if self.violations:
            return  # the first violation is the counterexample; the rest would repeat it
        arr = self.model.weights[table]
        cols = self.model.layout.cols(field)  # a field is a contiguous run of columns: read it as a view
        got = arr[np.atleast_1d(rows)][:, cols[0]:cols[-1] + 1] if not isinstance(rows, slice) else \
            arr[rows, cols[0]:cols[-1] + 1]
        want = np.broadcast_to(np.asarray(want, dtype=got.dtype), got.shape)
        bad = np.argwhere(got != want)
        if bad.size:
            i, c = bad[0]
            row = int(np.arange(arr.shape[0])[rows][i] if isinstance(rows, slice) else np.atleast_1d(rows)[i])
            self.violations.append(Violation(
                "embedding", "embedding",
                f"{table}[{row}, {int(cols[c])}] = {got[i, c]:g}, but {what} needs {want[i, c]:g} "
                f"(field '{field}', entry {int(c)})",
                {"table": table, "row": row, "column": int(cols[c]), "field": field, "got": float(got[i, c]),
                 "expected": float(want[i, c]), **({"token": token(row)} if token else {})}))


def _common(model, ck: _Checker) -> None:
    tok, pos = model.weights[Keys.TOK_EMB], model.weights[Keys.POS_EMB]
    both = np.flatnonzero(np.any(tok != 0, axis=0) & np.any(pos != 0, axis=0))
    if both.size:
        ck.violations.append(Violation("embedding", "embedding",
                                       f"column {int(both[0])} is set in both embedding tables, so [tok + pos] "
                                       f"may round", {"column": int(both[0])}))
    written = [p.output_field for p in model.heads if p.output_field] + [model.ffn.output_field]
    for field in written:
        ck.expect(Keys.TOK_EMB, slice(None), field, 0.0, "a field a layer writes to")
        ck.expect(Keys.POS_EMB, slice(None), field, 0.0, "a field a layer writes to")
    k = model.code_bits
    if model.config.max_len > 2 ** k:
        ck.violations.append(Violation("embedding", "embedding", f"{model.config.max_len} positions need more "
                                       f"than {k} code bits", {"max_len": model.config.max_len, "code_bits": k}))
    ck.expect(Keys.POS_EMB, slice(None), "pos", sbin(np.arange(pos.shape[0]), k), "sbin(position)")


def embedding_violations(model: ConstructedModel, circuit=None) -> list[Violation]:
    """``circuit``: the NormCircuit a Theorem 3.3 model was compiled from (CVP models need none)."""
    ck = _Checker(model)
    _common(model, ck)
    k = model.code_bits
    if model.mode == "thm33":
        n = circuit.n_inputs
        ck.expect(Keys.TOK_EMB, [0, 1], "tok", [[0.0], [1.0]], "the token's bit")
        for t, g in enumerate(circuit.gates):
            row = n + t - 1
            onehot = np.array([op == g.op for op in model.ffn.type_ops], dtype=np.float64)
            ck.expect(Keys.POS_EMB, row, "type", onehot, f"gate {t} ({g.op}) announced at position {row}")
            ck.expect(Keys.POS_EMB, row, "pred1", sbin(g.a, k), f"sbin(first input of gate {t})")
            ck.expect(Keys.POS_EMB, row, "pred2", sbin(g.b, k), f"sbin(second input of gate {t})")
        return ck.violations
    rows = cvp_rows(model)
    N = model.max_gates
    name = lambda r: model.vocab[r]  # noqa: E731
    if N + 1 >= 2 ** k:
        ck.violations.append(Violation("embedding", "embedding", f"gate ids up to {N + 1} need more than {k} bits",
                                       {"max_gates": N, "code_bits": k}))
    T = Keys.TOK_EMB
    for i, t in enumerate(CVP_TYPE_NAMES):
        ck.expect(T, rows.types[t], "type", np.eye(len(CVP_TYPE_NAMES))[i], f"the one-hot of {t}", name)
    others = np.setdiff1d(np.arange(len(model.vocab)), list(rows.types.values()))
    ck.expect(T, others, "type", 0.0, "a token that is no gate type", name)
    ck.expect(T, rows.na, "in_code", sbin(0, k), "NA's id 0", name)
    ids = np.arange(1, N + 1)
    ck.expect(T, rows.ids[ids], "in_code", sbin(ids, k), "sbin(gate id)", name)
    ck.expect(T, rows.non_cot, "self_code", sbin(0, k), "id 0 on every non-CoT token", name)
    ck.expect(T, rows.non_cot, "value", 0.0, "value 0 on every non-CoT token", name)
    r_ann = np.concatenate([[rows.sep], rows.cot[ids].ravel()])  # SEP, then g1=0, g1=1, g2=0 ...
    j_ann = np.concatenate([[0], np.repeat(ids, 2)])
    ck.expect(T, r_ann, "next_code", sbin(j_ann + 1, k), "sbin(next gate id)", name)
    for field, off in (("addr_type", 0), ("addr_in1", 1), ("addr_in2", 2)):
        ck.expect(T, r_ann, field, sbin(4 * j_ann + off, k), f"the position of the next gate's {field[5:]} token",
                  name)
    prompt = np.setdiff1d(np.arange(len(model.vocab)), r_ann)
    for field in ("addr_type", "addr_in1", "addr_in2"):  # so every layer-1 query names exactly one position
        ck.expect(T, prompt, field, sbin(0, k), "position 0: a prompt token fetches nothing, so it fetches a fixed "
                  "position rather than average every key", name)
    for v in (0, 1):
        cot_rows = rows.cot[ids, v]
        ck.expect(T, cot_rows, "self_code", sbin(ids, k), "sbin(own gate id)", name)
        ck.expect(T, cot_rows, "value", float(v), "the token's value", name)
    _check_head_rows(model, rows, ck)
    return ck.violations


def _check_head_rows(model, rows: CVPRows, ck: _Checker) -> None:
    """CoT logits: row g_j=v is sbin(j) on next_code, one weight w_v on out, bias b_v, zero elsewhere."""
    if ck.violations:
        return
    W, b = model.linear(Keys.HEAD)
    lay = model.layout
    next_cols, out_col = lay.cols("next_code"), lay.col(model.ffn.output_field)
    k, N = model.code_bits, model.max_gates
    for v in (0, 1):
        r = rows.cot[1:, v]
        mask = np.ones(W.shape[1], dtype=bool)
        mask[next_cols] = False
        mask[out_col] = False
        checks = [(W[np.ix_(r, next_cols)] != sbin(np.arange(1, N + 1), k), "sbin(j) on next_code"),
                  (W[np.ix_(r, mask.nonzero()[0])] != 0, "zero outside next_code and out"),
                  ((W[r, out_col] != W[r[0], out_col])[:, None], "one out weight for every gate"),
                  ((b[r] != b[r[0]])[:, None], "one bias for every gate")]
        for bad, what in checks:
            if bad.any():
                i = int(np.argwhere(bad)[0][0])
                ck.violations.append(Violation("embedding", "embedding",
                                               f"head row {int(r[i])} ({model.vocab[int(r[i])]}) breaks the readout "
                                               f"shape: {what}", {"table": Keys.weight(Keys.HEAD), "row": int(r[i]),
                                                                  "token": model.vocab[int(r[i])]}))
                return
