"""Tables as programs (``neural.construction.tables``): what a program materialises, how two programs compare
without listing rows, and that the embedding lemma reads a program exactly as it reads the array it becomes."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from formal.embedding import embedding_violations
from neural import cvp
from neural.config import Keys, weight_shapes
from neural.construction.construct import build_cvp
from neural.construction.fp import FPFormat
from neural.construction.tables import (
    Fill,
    Listed,
    Rows,
    TableProgram,
    Weights,
    affine_code,
    first_difference,
)

WIDTH = 3  # code bits of the generated fields


@st.composite
def programs(draw, rows: int):
    fills = []
    for _ in range(draw(st.integers(0, 5))):
        step = draw(st.sampled_from((1, 2, 3, 4, 6)))
        start = draw(st.integers(0, rows - 1))
        count = draw(st.integers(0, (rows - 1 - start) // step + 1))
        if draw(st.booleans()):
            value = ("code", draw(st.integers(-9, 20)), draw(st.integers(-9, 20)))  # past 2^3 and below 0: wraps
        else:
            value = tuple(draw(st.sampled_from((-1.0, 0.0, 1.0, 2.0))) for _ in range(WIDTH))
        fills.append(Fill.of(np.arange(WIDTH), Rows(start, step, count), value))
    return TableProgram((rows, WIDTH), "<f8", tuple(fills))


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(programs(n), programs(n))))
def test_comparing_two_programs_finds_the_difference_listing_every_row_finds(pair):
    """The structural comparison against the entry-by-entry one, on random programs of progressions with steps
    1..6, codes that wrap past 2^k, zero constants painted over codes, and empty fills."""
    mine, expected = pair
    array = mine.materialize()
    assert first_difference(mine, 0, WIDTH, expected) == first_difference(array, 0, WIDTH, expected)
    assert first_difference(mine, 0, WIDTH, mine) is None


def test_a_program_materialises_block_by_block_as_a_whole():
    p = TableProgram((50, 2), "<f4", (Fill.of([0, 1], Rows(3, 4, 10), affine_code([5, 6])),
                                      Fill.of([1], Rows(0, 1, 50), 1.0), Fill.of([0], Rows(10, 7, 3), 0.5)))
    whole = p.materialize()
    assert whole.dtype == np.float32 and np.array_equal(np.vstack([p.block(s, s + 7) for s in range(0, 50, 7)]), whole)
    assert whole[3, 0] == 1.0 and whole[7, 0] == -1.0 and whole[10, 0] == 0.5  # sbin(5): bit 0 set; sbin(6): clear
    assert p.column_values() == [frozenset({0.0, 1.0, -1.0, 0.5}), frozenset({0.0, 1.0, -1.0})]
    with pytest.raises(ValueError, match="arithmetic progression"):
        Rows.of([1, 2, 4])
    with pytest.raises(ValueError, match="not affine"):
        affine_code([1, 2, 4])


def test_weights_turn_a_program_into_an_array_once_and_then_the_array_is_the_table():
    p = TableProgram((4, 1), "<f8", (Fill.of([0], Rows(0, 1, 4), 1.0),))
    w = Weights({"a": np.zeros(2)}, {"t": p})
    assert set(w) == {"a", "t"} and len(w) == 2 and w.table("t") is p
    w["t"][2, 0] = 5.0  # read: now an array, edited in place
    assert w.program("t") is None and w.table("t")[2, 0] == 5.0


FMT = FPFormat(5, 11)


@pytest.mark.parametrize("n", [1, 3, 16])
def test_a_cvp_position_table_is_a_program_the_lemma_reads_as_its_array(n):
    model = build_cvp(n, FMT)
    assert all(isinstance(model.table(name), TableProgram) for name in (Keys.POS_EMB, Keys.TOK_EMB, "head.weight"))
    assert list(model.weights) == list(weight_shapes(model.config))  # listed in the model's own order
    as_arrays = dataclasses.replace(model, weights=dict(build_cvp(n, FMT).weights.items()), vocab=tuple(model.vocab))
    assert embedding_violations(model) == embedding_violations(as_arrays) == []  # names looked up in a tuple too
    assert list(model.vocab) == list(cvp.vocab(n)) and model.vocab == cvp.Vocabulary(n) != cvp.vocab(n)


WRONG_FILLS = [  # (what, fill index, change) on the 16-gate position table
    ("the id query of @a_g one slot late", 4, lambda f: dataclasses.replace(f, code=(4, 2))),
    ("the previous-value query on every other gate", 7, lambda f: dataclasses.replace(f, rows=Rows(f.rows.start, 8,
                                                                                                    8))),
    ("a role flag one position early", 10, lambda f: dataclasses.replace(f, rows=Rows(f.rows.start - 1, 4, 16))),
    ("the position code's slope", 0, lambda f: dataclasses.replace(f, code=(1 + 2 ** 7, 0))),
]


@pytest.mark.parametrize("what,index,change", WRONG_FILLS, ids=[w[0] for w in WRONG_FILLS])
def test_a_wrong_fill_is_refuted_at_the_entry_the_array_check_names(what, index, change):
    model = build_cvp(16, FMT)
    program = model.table(Keys.POS_EMB)
    fills = list(program.fills)
    fills[index] = change(fills[index])
    wrong = dataclasses.replace(program, fills=tuple(fills))
    arrays = dict(model.weights.items())
    structural = dataclasses.replace(model, weights=Weights({k: v for k, v in arrays.items() if k != Keys.POS_EMB},
                                                            {Keys.POS_EMB: wrong}))
    listed = dataclasses.replace(model, weights={**arrays, Keys.POS_EMB: wrong.materialize()})
    found = embedding_violations(structural)
    assert found and found == embedding_violations(listed), what
    assert structural.weights.program(Keys.POS_EMB) is wrong  # the check read the program, not an array


@st.composite
def scoped(draw, rows: int):
    """A program whose fills may list their rows one by one, and a set of rows to compare on."""
    program = draw(programs(rows))
    fills = tuple(dataclasses.replace(f, rows=Listed(f.rows.start + f.rows.step * np.arange(f.rows.count)))
                  if draw(st.booleans()) else f for f in program.fills)
    step = draw(st.sampled_from((1, 2, 4)))
    start = draw(st.integers(0, rows - 1))
    within = [Rows(start, step, draw(st.integers(0, (rows - 1 - start) // step + 1)))]
    return dataclasses.replace(program, fills=fills), within


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(scoped(n), programs(n))))
def test_listed_rows_and_a_scope_compare_as_the_entries_do(case):
    (mine, within), expected = case
    array = mine.materialize()
    scope = within[0].start + within[0].step * np.arange(within[0].count)
    got = first_difference(mine, 0, WIDTH, expected, within)
    listed = first_difference(array, 0, WIDTH, expected, within)
    assert got == listed
    bad = [r for r in scope if not np.array_equal(array[r], expected.block(r, r + 1)[0])]
    assert (got is None) == (not bad) and (got is None or got.row == bad[0])


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 30).flatmap(lambda n: st.tuples(programs(n), st.lists(st.integers(0, n - 1), max_size=12))))
def test_distinct_rows_of_a_program_are_those_of_its_array(case):
    program, index = case
    from neural.construction.tables import unique_rows

    index = np.array(index or [0], dtype=np.int64)
    bias = np.arange(program.shape[0], dtype=np.float64) % 3
    got, first = program.distinct_rows(index, bias)
    want, at = unique_rows(np.c_[program.materialize()[index], bias[index]])
    assert np.array_equal(got, want) and np.array_equal(first, index[at])
    assert np.array_equal(program.take(index), program.materialize()[index])


def test_the_cvp_vocabulary_names_and_finds_every_token_as_the_tuple_does():
    names = cvp.vocab(12)
    vocab = cvp.Vocabulary(12)
    assert len(vocab) == len(names) and list(vocab) == list(names) and vocab[-1] == "@12" and vocab[2:5] == names[2:5]
    assert [vocab.index(n) for n in names] == list(range(len(names)))
    assert list(vocab.rows("g", [1, 12])) == [names.index("g1"), names.index("g12")]
    for absent in ("g0", "g13", "g01", "@x", "@", "", "SEP2"):
        assert absent not in vocab
    with pytest.raises(ValueError):
        vocab.rows("@", [13])


@pytest.mark.parametrize("break_it,said", [
    ("bias", "one bias for every id row"),
    ("order", "the id rows' weights outside g_in come after it"),
])
def test_the_readout_shape_refuses_a_second_bias_and_a_tail_before_g_in(break_it, said):
    model = build_cvp(3, FMT)
    weights = dict(model.weights.items())
    W, b = weights[Keys.weight(Keys.HEAD)].copy(), weights[Keys.bias(Keys.HEAD)].copy()
    refs = np.r_[cvp.NA, cvp.ref_token(np.arange(1, 4), 3)]
    if break_it == "bias":
        b[refs[2]] += 1.0
    else:  # the same weight on every id row, so the tails still agree, but summed before g_in
        W[refs, int(model.layout.cols("g_in")[0]) - 1] = 0.5
    found = embedding_violations(dataclasses.replace(
        model, weights={**weights, Keys.weight(Keys.HEAD): W, Keys.bias(Keys.HEAD): b}))
    assert [v.reason.split(": ")[-1] for v in found] == [said]
    row = int(refs[2] if break_it == "bias" else refs[0])
    assert found[0].context["row"] == row
