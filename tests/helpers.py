"""Shared test helpers: random circuits (hypothesis strategy), the naive evaluator, CLI runner."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from hypothesis import strategies as st

from grammar.ir import TRUTH_TABLES, Circuit, Gate

ROOT = Path(__file__).resolve().parents[1]
ISCAS_OPS = ("AND", "NAND", "OR", "NOR", "XOR", "XNOR", "NOT", "BUF")


@st.composite
def circuits(draw, max_inputs: int = 5, max_gates: int = 12, max_fan_in: int = 4, ops=ISCAS_OPS,
             allow_consts: bool = True):
    n = draw(st.integers(1, max_inputs))
    inputs = [f"in{i}" for i in range(n)]
    signals = list(inputs)
    gates = []
    for t in range(draw(st.integers(1, max_gates))):
        choices = ops + (("CONST0", "CONST1") if allow_consts else ())
        op = draw(st.sampled_from(choices))
        if op.startswith("CONST"):
            args = ()
        else:
            fan_in = 1 if op in ("NOT", "BUF") else draw(st.integers(1, max_fan_in))
            args = tuple(draw(st.sampled_from(signals)) for _ in range(fan_in))
        gates.append(Gate(f"g{t}", op, args))
        signals.append(f"g{t}")
    perm = draw(st.permutations(gates))  # files need not be in topological order
    outs = draw(st.lists(st.sampled_from(signals), min_size=1, max_size=3, unique=True))
    return Circuit("rand", tuple(inputs), tuple(outs), tuple(perm))


def naive_eval(circuit: Circuit, bits) -> dict[str, int]:
    """Recursive evaluation straight from the user's circuit: the oracle for everything else."""
    by_name = {g.name: g for g in circuit.gates}
    memo = dict(zip(circuit.inputs, (int(b) for b in bits)))

    def value(name: str) -> int:
        if name not in memo:
            g = by_name[name]
            vals = [value(a) for a in g.inputs]
            op = g.op
            if op in ("AND", "NAND"):
                v = int(all(vals))
            elif op in ("OR", "NOR"):
                v = int(any(vals))
            elif op in ("XOR", "XNOR"):
                v = sum(vals) % 2
            elif op in ("NOT", "BUF"):
                v = vals[0]
            else:
                v = int(op == "CONST1")
            memo[name] = v ^ (op in ("NAND", "NOR", "XNOR", "NOT"))
        return memo[name]

    return {o: value(o) for o in circuit.outputs}


def cli(*args: str) -> subprocess.CompletedProcess:
    """A command as a user types it, run in this process (``in_process``): the same parser, exit status, stdout
    and stderr, without a second import of torch and z3 per call. Tests about the process itself (its exit code
    as the shell sees it, what it imports, signals) use ``cli_process``."""
    return in_process(*args)


def cli_process(*args: str) -> subprocess.CompletedProcess:
    """The command in its own Python process."""
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=600)


def in_process(*args: str) -> subprocess.CompletedProcess:
    """The command in this process (argparse's own exit included): fast, for tests where the process boundary is
    not the point. Limits stay on: nothing here passes --no-limit."""
    import contextlib
    import io
    import os

    from bridge.commands.main import main as cli_main
    from grammar import limits

    out, err = io.StringIO(), io.StringIO()
    cwd, lifted = os.getcwd(), limits.lifted()
    threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
    os.chdir(ROOT)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                status = cli_main(list(args))
            except SystemExit as stop:
                status = stop.code
    finally:  # what a command may set for its own process: --no-limit, torch's thread count, the directory
        os.chdir(cwd)
        limits._lifted = lifted
        if threads is not None:
            sys.modules["torch"].set_num_threads(threads)
    return subprocess.CompletedProcess(args, status, out.getvalue(), err.getvalue())


def cli_json(*args: str) -> dict:
    proc = cli(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def unused_tables_are_known() -> bool:
    return set(ISCAS_OPS) <= set(TRUTH_TABLES)
