"""Tables as programs: a weight table written as a few fills of row progressions, computed when rows are asked for.

A CVP model for N gates has an 8N-row position table, yet every entry is sbin of an affine function of the row, or a
constant, on a handful of progressions (the read schedule of ``neural.cvp``). Held as arrays the tables grow with
length times width (6 GB at a million gates); held as a ``TableProgram`` they are a few dozen numbers, and
``formal.embedding`` compares two programs field by field without listing a row (``first_difference``).

``Weights`` is the model's mapping of names to arrays: a program becomes an array the first time a name is read
(torch, export and the simulators read whole tables), and from then on the array is the table: a test that edits it
in place is checked entry by entry, as any array is.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import numpy as np

from grammar.codes import sbin

BLOCK_ROWS = 1 << 15  # rows materialised at a time where a comparison must look at entries


def unique_rows(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct rows, index of each one's first occurrence), in the order of first occurrence. Rows are compared
    as bytes, which sorts one key per row rather than ``np.unique(axis=0)``'s column-by-column lexsort: the 196,615
    rows of a 65,536-gate model's unembedding take milliseconds, not seconds. (-0 and +0 count as different.)"""
    m = np.ascontiguousarray(matrix)
    if m.shape[0] == 0:
        return m, np.zeros(0, dtype=np.int64)
    keys = m.view(np.dtype((np.void, m.dtype.itemsize * m.shape[1]))).ravel()
    _, first = np.unique(keys, return_index=True)
    first = np.sort(first)
    return m[first], first


@dataclass(frozen=True)
class Rows:
    """The rows start, start + step, ..., start + (count - 1) * step."""

    start: int
    step: int
    count: int

    def __post_init__(self):
        if self.step < 1 or self.count < 0 or self.start < 0:
            raise ValueError(f"not a progression of rows: {self}")

    @classmethod
    def of(cls, rows) -> "Rows":
        """The progression an array of rows is; a ValueError where it is none (the schedule changed shape)."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return cls(0, 1, 0)
        step = int(rows[1] - rows[0]) if rows.size > 1 else 1
        if step < 1 or not np.array_equal(rows, rows[0] + step * np.arange(rows.size)):
            raise ValueError("these rows are no arithmetic progression")
        return cls(int(rows[0]), step, int(rows.size))

    @property
    def last(self) -> int:
        return self.start + (self.count - 1) * self.step

    def positions(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(which of the rows ``index`` are in the progression, and their m there)."""
        off = np.asarray(index, dtype=np.int64) - self.start
        m = off // self.step
        inside = (off >= 0) & (off % self.step == 0) & (m < self.count)
        return inside, m[inside]


@dataclass(frozen=True, eq=False)
class Listed:
    """Rows given one by one (the m-th is ``rows[m]``): where rows found by name form no progression. A table
    with such a fill is compared a block of rows at a time."""

    rows: np.ndarray

    @property
    def count(self) -> int:
        return int(self.rows.size)

    def positions(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        order = np.argsort(self.rows, kind="stable")
        ranked = self.rows[order]
        at = np.clip(np.searchsorted(ranked, index), 0, max(0, ranked.size - 1))
        inside = ranked[at] == index if ranked.size else np.zeros(len(index), dtype=bool)
        return inside, order[at[inside]]


def rows_of(rows) -> "Rows | Listed":
    """A progression where ``rows`` is one, else the rows listed."""
    if isinstance(rows, (Rows, Listed)):
        return rows
    try:
        return Rows.of(rows)
    except ValueError:
        return Listed(np.asarray(rows, dtype=np.int64))


@dataclass(frozen=True)
class Fill:
    """Columns [lo, hi) of ``rows`` hold ``constant`` on every row, or, with ``code = (a, b)``, sbin(a*m + b) on the
    m-th row of the progression (hi - lo code bits)."""

    lo: int
    hi: int
    rows: "Rows | Listed"
    constant: tuple[float, ...] | None = None
    code: tuple[int, int] | None = None

    def __post_init__(self):
        if (self.constant is None) == (self.code is None):
            raise ValueError("a fill holds a constant or a code, not both")
        if self.constant is not None and len(self.constant) != self.hi - self.lo:
            raise ValueError("a constant needs one value per column")

    @classmethod
    def of(cls, cols, rows, value) -> "Fill":
        """``value``: one row of constants, or ("code", a, b)."""
        cols = np.asarray(cols)
        lo, hi = int(cols[0]), int(cols[-1]) + 1
        if not np.array_equal(cols, np.arange(lo, hi)):
            raise ValueError("a fill's columns are one contiguous run")
        rows = rows_of(rows)
        if isinstance(value, tuple) and value and value[0] == "code":
            return cls(lo, hi, rows, code=(int(value[1]), int(value[2])))
        flat = np.broadcast_to(np.asarray(value, dtype=np.float64), (hi - lo,))
        return cls(lo, hi, rows, constant=tuple(float(v) for v in flat))

    def values(self, m: np.ndarray) -> np.ndarray:
        """The fill's entries on the m-th rows of its progression: (len(m), hi - lo)."""
        if self.code is None:
            return np.broadcast_to(np.asarray(self.constant), (len(m), self.hi - self.lo))
        a, b = self.code
        return sbin(a * np.asarray(m, dtype=np.int64) + b, self.hi - self.lo)


def affine_code(values) -> tuple:
    """``("code", a, b)`` for values that are a*m + b on the m-th row of a progression; a ValueError where they
    are not affine (the schedule changed shape)."""
    v = np.asarray(values, dtype=np.int64)
    a = int(v[1] - v[0]) if v.size > 1 else 0
    b = int(v[0]) if v.size else 0
    if not np.array_equal(v, b + a * np.arange(v.size)):
        raise ValueError("these codes are not affine in the row")
    return ("code", a, b)


@dataclass(frozen=True)
class TableProgram:
    """A table of ``shape`` that starts as zeros and takes ``fills`` in order (a later fill wins where two meet)."""

    shape: tuple[int, int]
    dtype: str
    fills: tuple[Fill, ...]

    def block(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop), as the array would hold them (stop clipped to the table's end)."""
        stop = min(stop, self.shape[0])
        out = np.zeros((max(0, stop - start), self.shape[1]), dtype=self.dtype)
        for f in self.fills:
            r = f.rows
            if isinstance(r, Listed):
                inside, m = r.positions(np.arange(start, stop))
                out[np.flatnonzero(inside), f.lo:f.hi] = f.values(m)
                continue
            if r.count == 0 or r.last < start or r.start >= stop:
                continue
            first = max(0, -(-(start - r.start) // r.step))
            last = min(r.count, (stop - 1 - r.start) // r.step + 1)
            if first >= last:
                continue
            m = np.arange(first, last)
            out[r.start + r.step * m - start, f.lo:f.hi] = f.values(m)
        return out

    def materialize(self) -> np.ndarray:
        return self.block(0, self.shape[0])

    def take(self, index) -> np.ndarray:
        """The rows ``index``, in that order."""
        index = np.asarray(index, dtype=np.int64).ravel()
        out = np.zeros((index.size, self.shape[1]), dtype=self.dtype)
        for f in self.fills:
            inside, m = f.rows.positions(index)
            out[np.flatnonzero(inside), f.lo:f.hi] = f.values(m)
        return out

    def magnitudes(self) -> "TableProgram":
        """|entries|: a code's entries are +-1, so its fill becomes ones, and every row a fill set covers alike."""
        return TableProgram(self.shape, self.dtype, tuple(
            Fill(f.lo, f.hi, f.rows, constant=tuple(abs(v) for v in f.constant) if f.code is None else
                 (1.0,) * (f.hi - f.lo)) for f in self.fills))

    def distinct_rows(self, index=None, bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(the distinct rows among ``index`` (all rows where None), each with its ``bias`` entry appended when
        given, and the row each first occurs at), in the order of first occurrence: ``unique_rows`` of the
        materialised rows, computed from which fills cover each row. Rows covered by the same fills and holding
        no code are equal, so one of them stands for all; rows whose fills hold a code are listed."""
        index = np.arange(self.shape[0]) if index is None else np.asarray(index, dtype=np.int64).ravel()
        if len(self.fills) > 62 or index.size == 0:  # one bit a fill in an int64 pattern
            rows = self.take(index)
            joined = rows if bias is None else np.c_[rows, bias[index]]
            distinct, first = unique_rows(joined)
            return distinct, index[first]
        pattern = np.zeros(index.size, dtype=np.int64)
        coded = 0
        for i, f in enumerate(self.fills):
            pattern |= f.rows.positions(index)[0].astype(np.int64) << i
            coded |= (f.code is not None) << i
        key = pattern
        if bias is not None:
            values, rank = np.unique(bias[index], return_inverse=True)
            key = pattern * values.size + rank
        keys, first = np.unique(key, return_index=True)
        chosen = [first]  # places in ``index``, so that the order is that of first occurrence there
        for k, f0 in zip(keys, first):
            if int(pattern[f0]) & coded:  # a code: rows of this class differ
                chosen.append(np.flatnonzero(key == k))
        candidates = index[np.unique(np.concatenate(chosen))]
        parts, owners = [], []
        for s in range(0, candidates.size, BLOCK_ROWS):
            block = candidates[s:s + BLOCK_ROWS]
            rows = self.take(block)
            joined = rows if bias is None else np.c_[rows, bias[block]]
            distinct, at = unique_rows(joined)
            parts.append(distinct)
            owners.append(block[at])
        distinct, at = unique_rows(np.concatenate(parts))
        return distinct, np.concatenate(owners)[at]

    def distinct_values(self) -> np.ndarray:
        """Every value an entry holds (0 included): what ``_check_representable`` asks of the format."""
        values = {0.0}
        for f in self.fills:
            values.update(f.constant if f.code is None else (-1.0, 1.0))
        return np.array(sorted(values), dtype=self.dtype)

    def column_values(self) -> list[frozenset]:
        """The values each column holds (0 included where a row is left at zero or zeroed by a fill)."""
        out = [{0.0} for _ in range(self.shape[1])]
        for f in self.fills:
            if f.rows.count == 0:
                continue
            for c in range(f.lo, f.hi):
                out[c].update((f.constant[c - f.lo],) if f.code is None else (-1.0, 1.0))
        return [frozenset(s) for s in out]


# ---- reading a table that is an array or a program ---------------------------------------------------------------

def take_rows(table, index) -> np.ndarray:
    """The rows ``index`` of an array or a program, as an array."""
    return table.take(index) if isinstance(table, TableProgram) else table[np.asarray(index)]


def distinct_rows(table, index, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct rows among ``index`` with their bias appended, and the row each first occurs at, of an array
    (``unique_rows``) or a program (``TableProgram.distinct_rows``, which lists only rows holding a code)."""
    if isinstance(table, TableProgram):
        return table.distinct_rows(index, bias)
    index = np.asarray(index, dtype=np.int64)
    distinct, first = unique_rows(np.c_[table[index], bias[index]])
    return distinct, index[first]


def nonzero_columns(table) -> np.ndarray:
    """A mask of the columns any row of an array or a program sets."""
    if isinstance(table, TableProgram):
        return np.array([any(v != 0 for v in vs) for vs in table.column_values()], dtype=bool)
    return np.any(table != 0, axis=0)


# ---- comparing a field of two tables -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    row: int
    column: int  # within the compared columns
    got: float
    want: float


def first_difference(table, lo: int, hi: int, expected: TableProgram, within=None) -> Difference | None:
    """The first entry (by row, then column) where columns [lo, hi) of ``table`` (an array or a program) differ
    from ``expected`` (a program of width hi - lo); None where they are equal. Two programs are compared piece by
    piece: rows are split into residue classes modulo the steps' lcm, each class into intervals on which both
    sides hold one constant or one code that is affine in the row, and only intervals where the two pieces differ
    in form are looked at entry by entry. An array, or a program with listed rows, is compared a block of rows at a
    time. ``within``: rows (``Rows`` or ``Listed``) to compare on; every row where None."""
    within = None if within is None else [rows_of(w) for w in within]
    progressions = isinstance(table, TableProgram) and _aligned(table, lo, hi) and all(
        isinstance(f.rows, Rows) for f in table.fills + expected.fills) and all(
        isinstance(w, Rows) for w in within or ())
    if progressions:
        return _compare_programs(table, lo, hi, expected, within)
    rows = table.shape[0]
    for start in range(0, rows, BLOCK_ROWS):
        stop = min(rows, start + BLOCK_ROWS)
        index = np.arange(start, stop)
        keep = np.ones(index.size, dtype=bool) if within is None else np.any(
            [w.positions(index)[0] for w in within], axis=0)
        if not keep.any():
            continue
        got = table.block(start, stop)[:, lo:hi] if isinstance(table, TableProgram) else table[start:stop, lo:hi]
        found = _first(got[keep], expected.block(start, stop)[keep], index[keep])
        if found:
            return found
    return None


def _first(got: np.ndarray, want: np.ndarray, rows: np.ndarray) -> Difference | None:
    bad = np.argwhere(got != want.astype(got.dtype))
    if not bad.size:
        return None
    i, c = bad[0]
    return Difference(int(rows[i]), int(c), float(got[i, c]), float(want[i, c]))


def _aligned(table: TableProgram, lo: int, hi: int) -> bool:
    """Every fill covers all of [lo, hi) or none of it: the field is then a function of the row alone."""
    return all(f.hi <= lo or f.lo >= hi or (f.lo == lo and f.hi == hi) for f in table.fills)


def _restricted(table: TableProgram, lo: int, hi: int) -> list[Fill]:
    return [f for f in table.fills if f.lo == lo and f.hi == hi and f.rows.count]


def _compare_programs(table: TableProgram, lo: int, hi: int, expected: TableProgram,
                      within: list[Rows] | None) -> Difference | None:
    mine, theirs = _restricted(table, lo, hi), [f for f in expected.fills if f.rows.count]
    scope = None if within is None else [Fill(0, 1, w, constant=(1.0,)) for w in within if w.count]
    modulus = math.lcm(1, *(f.rows.step for f in mine + theirs + (scope or [])))
    rows, width = table.shape[0], hi - lo
    found: list[Difference] = []
    for residue in range(min(modulus, rows)):
        units = (rows - residue + modulus - 1) // modulus  # rows residue + modulus * u, u in [0, units)
        a, b = _painted(mine, residue, modulus, units, width), _painted(theirs, residue, modulus, units, width)
        inside = None if scope is None else _painted(scope, residue, modulus, units, 1)
        cuts = sorted({0, units, *(x for part in (a, b, inside or []) for s, e, _ in part for x in (s, e))})
        for s, e in zip(cuts, cuts[1:]):
            pa, pb = _piece_at(a, s), _piece_at(b, s)
            if pa == pb or (inside is not None and _piece_at(inside, s) is None):
                continue
            diff = _look(pa, pb, residue, modulus, s, e, width)
            if diff:
                found.append(diff)
                break
    return min(found, key=lambda d: (d.row, d.column)) if found else None


# A piece is ("const", values) or ("code", alpha, beta mod 2^width): sbin(alpha * u + beta) on unit u of a class.
def _painted(fills: list[Fill], residue: int, modulus: int, units: int, width: int) -> list[tuple[int, int, tuple]]:
    """Disjoint (start, stop, piece) intervals of units of one residue class, later fills painted over earlier
    ones; the gaps hold zeros."""
    intervals: list[tuple[int, int, tuple]] = []
    for f in fills:
        r = f.rows
        if (residue - r.start) % math.gcd(r.step, modulus):
            continue
        period = modulus // r.step  # the fill meets the class every period-th row of its progression
        m0 = next(m for m in range(period) if (r.start + r.step * m - residue) % modulus == 0)
        if m0 >= r.count:
            continue
        count = (r.count - m0 + period - 1) // period
        u0 = (r.start + r.step * m0 - residue) // modulus
        if f.code is None:
            piece = ("const", f.constant) if any(f.constant) else None  # zeros, as a gap holds
        else:  # a*m + b with m = m0 + period * i and u = u0 + i
            a, b = f.code
            alpha = a * period
            piece = ("code", alpha % (1 << width), (a * m0 + b - alpha * u0) % (1 << width))
        intervals = _paint(intervals, u0, u0 + count, piece)
    return intervals


def _paint(intervals, start, stop, piece):
    kept = []
    for s, e, p in intervals:
        if e <= start or s >= stop:
            kept.append((s, e, p))
            continue
        if s < start:
            kept.append((s, start, p))
        if e > stop:
            kept.append((stop, e, p))
    kept.append((start, stop, piece))
    return sorted(kept)


def _piece_at(intervals, u):
    for s, e, p in intervals:
        if s <= u < e:
            return p
    return None  # zeros


def _evaluate(piece, u: np.ndarray, width: int) -> np.ndarray:
    if piece is None:
        return np.zeros((len(u), width))
    if piece[0] == "const":
        return np.broadcast_to(np.asarray(piece[1]), (len(u), width))
    return sbin((piece[1] * u + piece[2]) % (1 << width), width)


def _look(pa, pb, residue, modulus, start, stop, width) -> Difference | None:
    """Entry by entry, a block at a time, over units [start, stop) where the two pieces differ in form."""
    for s in range(start, stop, BLOCK_ROWS):
        u = np.arange(s, min(stop, s + BLOCK_ROWS), dtype=np.int64)
        found = _first(_evaluate(pa, u, width), _evaluate(pb, u, width), residue + modulus * u)
        if found:
            return found
    return None


# ---- the model's weights -----------------------------------------------------------------------------------------

class Weights(MutableMapping):
    """Name -> array, where some arrays are still programs: reading one makes it an array (kept), and ``program``
    answers only while no array exists, so what a check reads is always what torch would load."""

    def __init__(self, arrays: dict[str, np.ndarray], programs: dict[str, TableProgram] | None = None,
                 order: tuple[str, ...] = ()):
        """``order``: the names in the order to list them (the model's own, ``weight_shapes``); others follow."""
        self._arrays = dict(arrays)
        self._programs = dict(programs or {})
        self._order = tuple(order)

    def program(self, name: str) -> TableProgram | None:
        return self._programs.get(name) if name not in self._arrays else None

    def table(self, name: str):
        """The program where there is one, else the array: what a check that understands both should read."""
        program = self.program(name)
        return program if program is not None else self._arrays[name]

    def pending_bytes(self) -> int:
        """What the programs not yet read will take as arrays: a run that loads the model makes them."""
        return sum(int(np.prod(p.shape)) * np.dtype(p.dtype).itemsize for name, p in self._programs.items()
                   if name not in self._arrays)

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            self._arrays[name] = self._programs[name].materialize()
        return self._arrays[name]

    def __setitem__(self, name: str, value: np.ndarray) -> None:
        self._arrays[name] = value

    def __delitem__(self, name: str) -> None:
        if name not in self:
            raise KeyError(name)
        self._arrays.pop(name, None)
        self._programs.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        names = {**self._programs, **self._arrays}
        return iter([*(n for n in self._order if n in names), *(n for n in names if n not in self._order)])

    def __len__(self) -> int:
        return len({**self._programs, **self._arrays})
