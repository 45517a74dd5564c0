"""Every solver query of a proved model as strict SMT-LIB 2.6, and other solvers (cvc5, bitwuzla) asked the same
questions. Each file holds a claim's negation, so every answer must be ``unsat``; a ``sat`` is a disagreement with
z3, reported loudly, and no answer in time is listed as unanswered."""
from __future__ import annotations

from pathlib import Path

from bridge.proof import Report


def emit_smt2(report: Report, directory: str) -> list[Path]:
    """Every query z3 answered in this proof, the very objects it was asked (each lemma's outcomes keep theirs), one
    strict SMT-LIB file each: nothing is rebuilt, so the files are the proof's questions whatever the spec set."""
    from formal.query import smt2_filename, to_smt2
    from neural.checkpoint import atomic_write_text

    out = Path(directory)
    paths = []
    for q in answered_queries(report):
        p = out / smt2_filename(q.name)
        atomic_write_text(p, to_smt2(q))
        paths.append(p)
    return paths


def answered_queries(report: Report) -> list:
    """The solver queries of every lemma in the report, in the order they were answered."""
    return [o.query for r in report.lemmas for o in r.outcomes if o.query is not None]


SOLVERS = ("cvc5", "bitwuzla")


def parse_solvers(text: str) -> tuple[str, ...]:
    from grammar.errors import InputError, SourceLoc

    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    unknown = [n for n in names if n not in SOLVERS]
    if unknown or not names:
        raise InputError(f"unknown solver {unknown[0] if unknown else text!r}",
                         SourceLoc("--cross-check"), text=text, expected="cvc5, bitwuzla or cvc5,bitwuzla")
    return names


def cross_check_all(paths: list[Path], timeout_s: float, solvers: tuple[str, ...]) -> dict:
    """One solver: its report as is. Several: each under ``solvers``, with their disagreements and unanswered
    queries gathered as ``solver:file``."""
    runs = {name: {"cvc5": cross_check, "bitwuzla": cross_check_bitwuzla}[name](paths, timeout_s) for name in solvers}
    if len(runs) == 1:
        return next(iter(runs.values()))
    return {"solver": ", ".join(r["solver"] for r in runs.values()), "queries": len(paths), "solvers": runs,
            "disagreements": [f"{n}:{f}" for n, r in runs.items() for f in r["disagreements"]],
            "unanswered": [f"{n}:{f}" for n, r in runs.items() for f in r["unanswered"]]}


def cross_check_bitwuzla(paths: list[Path], timeout_s: float) -> dict:
    """Re-solve exported queries with bitwuzla (its own SMT-LIB parser, so a non-standard file fails here)."""
    from grammar.errors import InputError, SourceLoc

    try:
        import bitwuzla
    except ImportError:
        raise InputError("--cross-check bitwuzla needs the bitwuzla Python package, which is not installed",
                         SourceLoc("--cross-check"), expected="pip install bitwuzla") from None
    from bridge.progress import Progress

    disagreements, unanswered, answers = [], [], {}
    for p in Progress.over(paths, "query", "  cross-check bitwuzla"):
        options = bitwuzla.Options()
        options.set(bitwuzla.Option.TIME_LIMIT_PER, max(1, int(timeout_s * 1000)))
        parser = bitwuzla.Parser(bitwuzla.TermManager(), options)
        try:
            parser.parse(str(p), True, True)
            answer = str(parser.bitwuzla().check_sat())
        except bitwuzla.BitwuzlaException as err:
            answer = f"error: {str(err).strip()[:60]}"
        answers[p.name] = answer
        if answer == "sat":
            disagreements.append(p.name)
        elif answer != "unsat":
            unanswered.append(p.name)
    return {"solver": f"bitwuzla {getattr(bitwuzla, '__version__', '')}".strip(),
            "options": {"time-limit-per": str(max(1, int(timeout_s * 1000)))}, "queries": len(paths),
            "disagreements": disagreements, "unanswered": unanswered, "answers": answers}


def cross_check(paths: list[Path], timeout_s: float) -> dict:
    """Re-solve exported queries with cvc5; every answer must be unsat (each file is a claim's negation).

    cvc5's default FP solver takes only Float32/Float64, so small formats use its ``fp-exp`` solver; the report
    names the options used so a disagreement can be reproduced."""
    from grammar.errors import InputError, SourceLoc

    try:
        import cvc5
    except ImportError:
        raise InputError("--cross-check needs the cvc5 Python package, which is not installed",
                         SourceLoc("--cross-check"), expected="pip install cvc5") from None
    options = {"tlimit-per": str(max(1, int(timeout_s * 1000))), "fp-exp": "true"}
    from bridge.progress import Progress

    disagreements, unanswered, answers = [], [], {}
    for p in Progress.over(paths, "query", "  cross-check cvc5"):
        tm = cvc5.TermManager()
        solver, symbols = cvc5.Solver(tm), cvc5.SymbolManager(tm)
        for key, value in options.items():
            solver.setOption(key, value)
        solver.setLogic("ALL")
        parser = cvc5.InputParser(solver, symbols)
        parser.setFileInput(cvc5.InputLanguage.SMT_LIB_2_6, str(p))
        said = []
        while not (cmd := parser.nextCommand()).isNull():
            said.append(cmd.invoke(solver, symbols).strip())
        answer = next((w for w in reversed(said) if w), "no answer")
        answers[p.name] = answer if len(answer) < 80 else answer[:77] + "..."
        if answer == "sat":
            disagreements.append(p.name)  # z3 proved it, cvc5 found a counterexample
        elif answer != "unsat":
            unanswered.append(p.name)
    return {"solver": f"cvc5 {cvc5.__version__ if hasattr(cvc5, '__version__') else ''}".strip(),
            "options": options, "queries": len(paths), "disagreements": disagreements, "unanswered": unanswered,
            "answers": answers}
