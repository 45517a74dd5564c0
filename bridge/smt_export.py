"""Every solver query of a proved model as SMT-LIB2, and a second solver (cvc5) asked the same questions."""
from __future__ import annotations

from pathlib import Path

from bridge.proof import Report


def emit_smt2(report: Report, directory: str, unrolled_k: int = 4) -> list[Path]:
    from formal.obligations import all_queries
    from formal.query import smt2_filename, to_smt2
    from neural.checkpoint import atomic_write_text

    out = Path(directory)
    paths = []
    for q in all_queries(report.model, unrolled_k):
        p = out / smt2_filename(q.name)
        atomic_write_text(p, to_smt2(q))
        paths.append(p)
    return paths


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
    disagreements, unanswered, answers = [], [], {}
    for p in paths:
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
