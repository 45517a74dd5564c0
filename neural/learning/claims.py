"""The paper's claims, judged from a grid's scored rows (``neural.learning.reproduce``): one function per claim, each
returning one ``Judgement`` of the rows as scored, which ``settle`` turns into one ``Claim``. A claim is judged only on
its deciding cells: not run until they are scored, and undecided where a budget-bound one (stopped at its step cap,
not converged) could change the verdict with more training."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from itertools import product

import numpy as np

from neural.learning.reproduce_report import budget_bound

NO_EVIDENCE = "no deciding cell has run"  # a claim's evidence before any of its cells is scored
UNDECIDED = "undecided: budget-bound"  # a claim that a cell which used its whole budget could still turn


@dataclass(frozen=True)
class Thresholds:
    """The numbers the paper's claims are judged by. The checks and the claims' prose both read them from here, so a
    changed threshold cannot leave the text saying the old one."""

    cot_reaches: float = 0.99  # CoT at 1 layer: every seed's accuracy at least this
    cot_unsound: float = 0.01  # and its unsound step rate at most this
    base_stays_below: float = 0.25  # S5, isq: base at or below this at every depth run
    base_learns: float = 0.9  # modadd: base "learns" a length; cvp: the depth at which base reaches it
    cvp_gap: float = 0.15  # cvp: CoT at 1 layer above base at 1 layer by at least this
    depth_noise: float = 0.02  # cvp: base "falls" with depth only by more than its seed spread and this


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class Judgement:
    """A claim as its deciding cells say it as scored: ``holds`` None where they have not all run."""

    task: str
    claim: str
    holds: bool | None
    evidence: str
    deciding: list


@dataclass(frozen=True)
class Claim:
    """One claim as the results state it: ``holds`` True or False as judged, None where not run or undecided;
    ``verdict`` says which (holds, fails, not run, or ``UNDECIDED``)."""

    task: str
    claim: str
    holds: bool | None
    verdict: str
    evidence: str

    def to_dict(self) -> dict:
        return asdict(self)


MOST_OPEN = 12  # open cells (budget-bound or not run) whose every outcome ``settle`` tries: 2^12 judgements at most


def settle(judge: Callable[[list[dict]], Judgement], rows: list[dict], missing: tuple = ()) -> Claim:
    """The claim as ``judge`` says it from ``rows``, unless a cell still open could change it.

    A cell is open where it is budget-bound (more training could raise its accuracy anywhere from its score to 1.0
    and lower a CoT cell's unsound step rate to 0) or not run (``missing``: anything from 0 to 1). The claim is
    judged again with every combination of its open cells at either end, all seeds of a cell together (the claims
    compare means and minima with thresholds, so the ends are where a verdict can turn). It stands only if every
    combination gives the verdict the scored rows give; else it is undecided, where budget-bound cells alone can
    turn it, or not run, where it waits on cells not yet scored."""
    first = judge(rows)
    evidence = first.evidence or NO_EVIDENCE
    if first.holds is None:
        return Claim(first.task, first.claim, None, "not run", evidence)
    bound = _by_cell(r for r in first.deciding if budget_bound(r))
    waiting = _by_cell(_unscored_row(c, rows) for c in missing if c.task == first.task)

    def turning(open_cells: dict) -> list[str]:
        """The open cells whose score can turn the verdict: those where two combinations that differ in that cell
        alone give different verdicts (all of them where there are too many to try, or where every combination
        agrees but differs from the scored rows')."""
        names, groups = list(open_cells), list(open_cells.values())
        if len(groups) > MOST_OPEN:
            return names
        verdict = {ends: judge(at_ends(rows, groups, ends)).holds for ends in product((False, True),
                                                                                      repeat=len(groups))}
        if all(v == first.holds for v in verdict.values()):
            return []
        some = [name for i, name in enumerate(names)
                if any(v != verdict[ends[:i] + (not ends[i],) + ends[i + 1:]] for ends, v in verdict.items())]
        return some or names

    if bound and (turn := turning(bound)):
        return Claim(first.task, first.claim, None, UNDECIDED, f"{evidence}; budget-bound: {', '.join(turn)}")
    if waiting and (turn := turning({**bound, **waiting})):
        return Claim(first.task, first.claim, None, "not run", f"{evidence}; waits on cells not run: "
                     f"{', '.join(n for n in turn if n in waiting) or ', '.join(waiting)}")
    if bound:
        evidence += f"; budget-bound, but no score up to 1.0 changes the verdict: {', '.join(bound)}"
    return Claim(first.task, first.claim, first.holds, "holds" if first.holds else "fails", evidence)


def _by_cell(rows) -> dict[str, list[dict]]:
    """Rows grouped by cell (the seeds of one setting, depth and length), named as the evidence names them."""
    cells: dict[str, list[dict]] = {}
    for r in rows:
        cells.setdefault(f"{r['setting']} L{r['layers']} n={r['length']}", []).append(r)
    return dict(sorted(cells.items()))


def _unscored_row(cell, rows: list[dict]) -> dict:
    """A stand-in for a cell not yet scored, for ``settle`` to try at either end: its chance levels are those of a
    scored row of its task and length, where there is one."""
    like = next((r for r in rows if (r["task"], r["length"]) == (cell.task, cell.length)), {})
    return {"task": cell.task, "setting": cell.setting, "layers": cell.layers, "length": cell.length,
            "seed": cell.seed, "accuracy": 0.0, "unsound_step_rate": None if cell.setting == "base" else 1.0,
            "majority_baseline": like.get("majority_baseline"), "shallow_baseline": like.get("shallow_baseline"),
            "stop_reason": None, "converged": True, "not_run": True}


def at_ends(rows: list[dict], groups: list[list[dict]], ends: tuple[bool, ...]) -> list[dict]:
    """``rows`` with each open cell at the end ``ends`` marks: a budget-bound cell as scored or at its best (accuracy
    1.0 and, for CoT, no unsound step); a cell not run at its worst (accuracy 0, every step unsound) or its best.
    ``ablations`` tries its capped runs the same way."""
    chosen = {id(r): high for group, high in zip(groups, ends) for r in group}
    out = [_best(r) if chosen.get(id(r)) else r for r in rows]
    return out + [_best(r) if high else r for group, high in zip(groups, ends) for r in group if r.get("not_run")]


def _best(row: dict) -> dict:
    return {**row, "accuracy": 1.0, **({} if row.get("unsound_step_rate") is None else {"unsound_step_rate": 0.0})}


def claims(rows: list[dict], profile) -> list[dict]:
    """Every claim the profile's rows can decide, as the results JSON holds them."""
    from neural.learning.profiles import unscored

    t = THRESHOLDS
    judges = [lambda rs: modadd_claim(rs, t), lambda rs: hard_task_claim(rs, t, "s5", "composition in S5"),
              lambda rs: hard_task_claim(rs, t, "isq", "iterated squaring"), lambda rs: cvp_claim(rs, profile, t)]
    if len(profile.lengths.get("cvp", ())) > 1 or len({r["length"] for r in _group(rows, "cvp", "base")}) > 1:
        judges.append(lambda rs: cvp_depth_claim(rs, t))  # the depth question needs several circuit sizes
    missing = tuple(unscored(profile, rows, profile.seeds))
    return [settle(judge, rows, missing).to_dict() for judge in judges]


def modadd_claim(rows: list[dict], t: Thresholds) -> Judgement:
    ok, text, cot_rows = _cot_one_layer(rows, t, "modadd")
    base = _group(rows, "modadd", "base")
    lengths = sorted({r["length"] for r in base})
    learned = [n for n in lengths if any(np.mean([r["accuracy"] for r in _group(base, "modadd", "base", d, n)])
                                         >= t.base_learns for d in {r["layers"] for r in base})]
    failed = [n for n in lengths if n not in learned]
    axis = len(lengths) > 1
    holds = ok if not axis or ok is None else (ok and bool(learned) and bool(failed) and max(learned) < min(failed))
    return Judgement("modadd", "CoT at 1 layer learns addition mod 7 at every input length; base learns short "
                     "inputs but not long ones, so CoT's advantage shows as inputs grow", holds,
                     text + f"; base learns (>= {t.base_learns:g} at some depth) at lengths {learned or 'none'}, "
                     f"not at {failed or 'none'}" + ("" if axis else
                                                     " (one length run: only the CoT half is judged)"),
                     cot_rows + (base if axis else []))


def hard_task_claim(rows: list[dict], t: Thresholds, task: str, name: str) -> Judgement:
    """S5 and isq: base stays near chance at every depth, CoT at 1 layer reaches the bar."""
    ok1, t1, r1 = _cot_one_layer(rows, t, task)
    base = _group(rows, task, "base")
    depths = sorted({r["layers"] for r in base})
    t2 = "; ".join(f"base L{d}: {_span(_group(base, task, 'base', d))}" for d in depths)
    ok2 = all(r["accuracy"] <= t.base_stays_below for r in base) if base else None
    both = None if ok1 is None or ok2 is None else ok1 and ok2
    return Judgement(task, f"{name}: base stays at or below {t.base_stays_below:g} at every depth run; CoT with 1 "
                     f"layer reaches {t.cot_reaches:g}", both, "; ".join(x for x in (t1, t2) if x), r1 + base)


def cvp_claim(rows: list[dict], profile, t: Thresholds) -> Judgement:
    """At the profile's main circuit size: CoT at 1 layer reaches the bar, base well below it and not falling with
    depth."""
    main = profile.lengths["cvp"][0] if "cvp" in profile.lengths else None  # a profile without cvp has no cvp rows
    ok1, evidence, r1 = _cot_one_layer(rows, t, "cvp", main)
    base = _group(rows, "cvp", "base", length=main)
    holds = ok1
    if base:
        depths = sorted({r["layers"] for r in base})
        means = {d: np.mean([r["accuracy"] for r in _group(base, "cvp", "base", d)]) for d in depths}
        spread = max((max(r["accuracy"] for r in _group(base, "cvp", "base", d)) -
                      min(r["accuracy"] for r in _group(base, "cvp", "base", d)) for d in depths), default=0.0)
        gap = (np.mean([r["accuracy"] for r in r1]) - means.get(1, np.nan)) if r1 and 1 in means else None
        falls = any(means[b] < means[a] - max(spread, t.depth_noise) for a, b in zip(depths, depths[1:]))
        reach = first_depth_reaching(base, t.base_learns)
        holds = None if ok1 is None else bool(ok1 and (gap is None or gap >= t.cvp_gap) and not falls)
        evidence += ("; " + "; ".join(f"base L{d}: {_span(_group(base, 'cvp', 'base', d))}" for d in depths) +
                     (f"; CoT L1 minus base L1 = {gap:.3f}" if gap is not None else "") +
                     f"; base falls with depth beyond its seed spread: {'yes' if falls else 'no'}" +
                     f"; depth at which base reaches {t.base_learns:g}: "
                     f"{reach if reach else 'none of ' + str(depths)}" +
                     (f"; shallow baseline {base[0]['shallow_baseline']:.3f}"
                      if base[0].get("shallow_baseline") is not None else ""))
    return Judgement("cvp", f"circuit value at {main} gates: CoT with 1 layer reaches {t.cot_reaches:g}; base is "
                     f"well below it at 1 layer (by {t.cvp_gap:g} or more) and does not get worse with depth",
                     holds, evidence.lstrip("; "), r1 + base)


def cvp_depth_claim(rows: list[dict], t: Thresholds) -> Judgement:
    """The depth question across circuit sizes: base needs more depth as circuits grow, CoT at 1 layer does not."""
    base = _group(rows, "cvp", "base")
    sizes = sorted({r["length"] for r in base})
    reach = [first_depth_reaching(_group(base, "cvp", "base", length=n), t.base_learns) for n in sizes]
    cot = {n: _group(rows, "cvp", "cot", 1, n) for n in sizes}
    cot_ok = all(rs and all(r["accuracy"] >= t.cot_reaches for r in rs) for rs in cot.values())
    deepest = {n: max(r["layers"] for r in _group(base, "cvp", "base", length=n)) for n in sizes}
    return Judgement("cvp", f"circuit value, the depth question: the depth at which base first reaches "
                     f"{t.base_learns:g} grows with the circuit's size; CoT with 1 layer reaches "
                     f"{t.cot_reaches:g} at every size", None if len(sizes) < 2 else
                     bool(depth_grows(reach) and cot_ok),
                     f"base first reaches {t.base_learns:g} at depth " +
                     ", ".join(f"{d if d else f'none up to {deepest[n]}'} for {n} gates" for n, d in zip(sizes, reach))
                     + "; " + "; ".join(f"cot L1 n={n}: {_span(rs) if rs else 'not run'}" for n, rs in cot.items()),
                     base + [r for rs in cot.values() for r in rs])


def first_depth_reaching(rows: list[dict], level: float) -> int | None:
    """The shallowest depth whose mean accuracy over seeds reaches ``level`` (None: no depth run does)."""
    depths = sorted({r["layers"] for r in rows})
    return next((d for d in depths if np.mean([r["accuracy"] for r in rows if r["layers"] == d]) >= level), None)


def depth_grows(reach: list[int | None]) -> bool:
    """Whether the depth needed grows with size: never smaller at a larger size (None, never reached, counts as
    beyond every depth run), and larger at the largest size than at the smallest."""
    order = [float("inf") if d is None else d for d in reach]
    return all(a <= b for a, b in zip(order, order[1:])) and order[0] < order[-1]


def _cot_one_layer(rows, t: Thresholds, task: str, length=None):
    """Whether every CoT cell at 1 layer reaches the bar soundly, its evidence, and the cells."""
    rs = _group(rows, task, "cot", 1, length)
    ok = bool(rs) and all(r["accuracy"] >= t.cot_reaches and (r["unsound_step_rate"] or 0) <= t.cot_unsound
                          for r in rs)
    text = "; ".join(f"cot L1 n={n}: {_span(_group(rs, task, 'cot', 1, n))}" for n in sorted({r["length"] for r in rs}))
    return (ok if rs else None), text, rs


def _group(rows, task, setting, layers=None, length=None):
    return [r for r in rows if r["task"] == task and r["setting"] == setting and
            (layers is None or r["layers"] == layers) and (length is None or r["length"] == length)]


def _span(rs) -> str:
    accs = [r["accuracy"] for r in rs]
    return f"{np.mean(accs):.3f}" + (f" [{min(accs):.3f}-{max(accs):.3f}, {len(accs)} seeds]" if len(accs) > 1 else "")
