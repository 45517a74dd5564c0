"""The embedding lemma finds a wrong entry wherever it sits, and names it: each schedule field's scheduled rows
and its default rows (checked in place, by mask), and the token table's named and default rows."""
from __future__ import annotations

import dataclasses

import pytest

from formal.embedding import embedding_violations
from neural.construction.construct import build_cvp
from neural.construction.fp import FPFormat

N = 8
MODEL = build_cvp(N, FPFormat(5, 11))
VOCAB = {t: i for i, t in enumerate(MODEL.vocab)}
C = lambda g, slot: 4 * N + 1 + 4 * (g - 1) + slot  # noqa: E731  (CoT slot positions, as the lemma states them)

# (description, table, row, field, entry within the field, new value)
WRONG = [
    ("a flag on a prompt position", "pos_emb.weight", 5, "role_id", 0, 1.0),
    ("a flag one position late", "pos_emb.weight", C(3, 0) + 1, "role_va", 0, 1.0),
    ("a default id query", "pos_emb.weight", 2, "q_in", 3, 1.0),
    ("the last position's previous-value query", "pos_emb.weight", 8 * N - 1, "q_prev", 0, 1.0),
    ("a scheduled type query", "pos_emb.weight", C(4, 2), "q_type", 1, 0.0),
    ("the position code", "pos_emb.weight", 8 * N - 1, "pos", 2, 0.0),
    ("SEP's id code", "tok_emb.weight", VOCAB["SEP"], "in_code", 0, 1.0),
    ("a type on the value 0", "tok_emb.weight", VOCAB["0"], "type", 2, 1.0),
    ("the value of 1", "tok_emb.weight", VOCAB["1"], "value", 0, 0.0),
    ("a value on the last prompt id", "tok_emb.weight", VOCAB[f"g{N}"], "value", 0, 1.0),
    ("the value query of the last CoT id", "tok_emb.weight", VOCAB[f"@{N}"], "idq", 4, 0.5),
]


@pytest.mark.parametrize("what,table,row,field,entry,value", WRONG, ids=[w[0] for w in WRONG])
def test_a_wrong_entry_is_found_and_named(what, table, row, field, entry, value):
    assert embedding_violations(MODEL) == []
    weights = {name: a.copy() for name, a in MODEL.weights.items()}
    column = MODEL.layout.cols(field)[entry]
    if weights[table][row, column] == value:  # make sure it is a change
        value = -value if value else 1.0
    weights[table][row, column] = value
    found = embedding_violations(dataclasses.replace(MODEL, weights=weights))
    assert len(found) >= 1, what
    context = found[0].context
    assert (context["table"], context["row"], context["column"], context["field"]) == (table, row, column, field)
    assert context["got"] == value
