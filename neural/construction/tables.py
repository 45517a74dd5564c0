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


@dataclass(frozen=True)
class Fill:
    """Columns [lo, hi) of ``rows`` hold ``constant`` on every row, or, with ``code = (a, b)``, sbin(a*m + b) on the
    m-th row of the progression (hi - lo code bits)."""

    lo: int
    hi: int
    rows: Rows
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
        rows = rows if isinstance(rows, Rows) else Rows.of(rows)
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

    def nonzero_columns(self) -> np.ndarray:
        return np.flatnonzero([any(v != 0 for v in vs) for vs in self.column_values()])


# ---- comparing a field of two tables -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Difference:
    row: int
    column: int  # within the compared columns
    got: float
    want: float


def first_difference(table, lo: int, hi: int, expected: TableProgram) -> Difference | None:
    """The first entry (by row, then column) where columns [lo, hi) of ``table`` (an array or a program) differ
    from ``expected`` (a program of width hi - lo); None where they are equal. Two programs are compared piece by
    piece: rows are split into residue classes modulo the steps' lcm, each class into intervals on which both
    sides hold one constant or one code that is affine in the row, and only intervals where the two pieces differ
    in form are looked at entry by entry. An array is compared a block of rows at a time."""
    if isinstance(table, TableProgram) and _aligned(table, lo, hi):
        return _compare_programs(table, lo, hi, expected)
    rows = table.shape[0]
    for start in range(0, rows, BLOCK_ROWS):
        stop = min(rows, start + BLOCK_ROWS)
        got = table.block(start, stop)[:, lo:hi] if isinstance(table, TableProgram) else table[start:stop, lo:hi]
        found = _first(got, expected.block(start, stop), np.arange(start, stop))
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


def _compare_programs(table: TableProgram, lo: int, hi: int, expected: TableProgram) -> Difference | None:
    mine, theirs = _restricted(table, lo, hi), [f for f in expected.fills if f.rows.count]
    modulus = math.lcm(1, *(f.rows.step for f in mine + theirs))
    rows, width = table.shape[0], hi - lo
    found: list[Difference] = []
    for residue in range(min(modulus, rows)):
        units = (rows - residue + modulus - 1) // modulus  # rows residue + modulus * u, u in [0, units)
        a, b = _painted(mine, residue, modulus, units, width), _painted(theirs, residue, modulus, units, width)
        cuts = sorted({0, units, *(s for s, _, _ in a), *(e for _, e, _ in a), *(s for s, _, _ in b),
                       *(e for _, e, _ in b)})
        for s, e in zip(cuts, cuts[1:]):
            pa, pb = _piece_at(a, s), _piece_at(b, s)
            if pa == pb:
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

    def __init__(self, arrays: dict[str, np.ndarray], programs: dict[str, TableProgram] | None = None):
        self._arrays = dict(arrays)
        self._programs = dict(programs or {})

    def program(self, name: str) -> TableProgram | None:
        return self._programs.get(name) if name not in self._arrays else None

    def table(self, name: str):
        """The program where there is one, else the array: what a check that understands both should read."""
        return self.program(name) if self.program(name) is not None else self._arrays[name]

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
        return iter({**self._programs, **self._arrays})

    def __len__(self) -> int:
        return len({**self._programs, **self._arrays})
