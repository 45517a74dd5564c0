"""The grid's results file (``results/<profile>.json``) and what is drawn from it: the rows, their provenance (the
machine and the commit that produced each), the cells not yet run, the claims, the table and the figures. Written
atomically after every group, so a killed grid loses nothing it scored."""
from __future__ import annotations

import functools
import json
import os
import platform
import subprocess
from pathlib import Path

from neural.checkpoint import atomic_write_bytes, atomic_write_text
from neural.learning.claims import claims
from neural.learning.profiles import LENGTH_PARAM, PROFILES, unscored


def machine() -> str:
    try:
        import torch

        if torch.cuda.is_available():
            return f"{torch.cuda.get_device_name(0)} (CUDA), torch {torch.__version__}"
        version = torch.__version__
    except ImportError:
        version = "?"
    return f"CPU: {os.cpu_count()} cores, {platform.machine()}, {platform.system()}, torch {version}"


COMMIT_ENV = "COTPROOF_COMMIT"  # the commit a grid started at, handed to its worker processes


@functools.lru_cache(maxsize=1)
def commit() -> str:
    """The code's commit, as a row records it: the grid's own (``COMMIT_ENV``, set before its workers start), so a
    row scored hours later does not name a commit made meanwhile in the same checkout."""
    if os.environ.get(COMMIT_ENV):
        return os.environ[COMMIT_ENV]
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def load_results(path: Path) -> list[dict]:
    """The cells already scored; a file that is not a results JSON is refused, never overwritten."""
    from grammar.errors import InputError, SourceLoc
    from grammar.source import parse_json, read_text

    if not path.exists():
        return []
    doc = parse_json(read_text(path, "results file"), path, "the results file",
                     "a results file written by cotproof reproduce")
    cells = doc.get("cells") if isinstance(doc, dict) else None
    key = {"task", "setting", "layers", "length", "seed"}
    if not isinstance(cells, list) or not all(isinstance(r, dict) and key <= r.keys() for r in cells):
        raise InputError("not a reproduction's results: no list of cells with task, setting, layers, length and seed",
                         SourceLoc(str(path)), expected="a results file written by cotproof reproduce")
    # A row keeps the provenance of the run that produced it; rows from before rows carried their own get the
    # file's.
    return [{"commit": doc.get("commit", "unknown"), "machine": doc.get("machine", "unknown"), **r} for r in cells]


def document(profile_name: str, rows: list[dict], planned: bool = False) -> dict:
    """A results document: the scored cells and the claims they decide. ``planned`` also lists every cell of the
    profile that has not run (``"status": "not run"``, never a stand-in) and the command that runs them."""
    profile = PROFILES[profile_name]

    def order(r):
        return list(LENGTH_PARAM).index(r["task"]), r["setting"], r["length"], r["layers"], r["seed"]

    rows = sorted(rows, key=order)
    doc = {"profile": profile_name, "machine": _provenance(rows, "machine", machine),
           "commit": _provenance(rows, "commit", commit), "cells": rows, "claims": claims(rows, profile)}
    if planned:
        missing = [{"task": c.task, "setting": c.setting, "layers": c.layers, "length": c.length, "seed": c.seed,
                    "status": "not run"} for c in unscored(profile, rows, profile.seeds)]
        doc["not_run"] = sorted(missing, key=order)
        doc["finish_with"] = profile.finish_with if missing else None
    return doc


def _provenance(rows: list[dict], key: str, current) -> str:
    """A results file's commit (or machine) is that of the runs that produced its cells, not of the process that
    last wrote the file: one value, or the distinct ones joined."""
    values = sorted({str(r[key]) for r in rows if r.get(key)})
    return "; ".join(values) if values else current()


def write_results(profile_name: str, rows: list[dict], results: Path) -> None:
    """The results JSON, table and figures, the learning curves among them (drawn from the curves the rows hold)."""
    from neural.learning.reproduce_report import plot_curves, plot_depth, plot_length, render_table

    doc = document(profile_name, rows, planned=True)
    atomic_write_text(results / f"{profile_name}.json", results_json(doc))
    atomic_write_text(results / "table.md" if profile_name == "quick" else results / f"table_{profile_name}.md",
                      render_table(doc, PROFILES[profile_name]))
    for name, png in (("accuracy_vs_depth", plot_depth(doc, PROFILES[profile_name])),
                      ("accuracy_vs_length", plot_length(doc, PROFILES[profile_name])),
                      ("learning_curves", plot_curves(doc, PROFILES[profile_name]))):
        if png is not None:
            atomic_write_bytes(results / f"{name}_{profile_name}.png", png)


def results_json(doc: dict, rows: str = "cells") -> str:
    """The results document as JSON, one field a line, except each row's learning curve (the rows under ``rows``),
    which stays on its row's one line (a curve a line per number would make the file ten times as long)."""
    curves = {}

    def placeholder(row: dict) -> dict:
        if row.get("validation_curve") is None:
            return row
        curves[f"@curve{len(curves)}"] = json.dumps(row["validation_curve"], separators=(",", ":"))
        return {**row, "validation_curve": f"@curve{len(curves) - 1}"}

    text = json.dumps({**doc, rows: [placeholder(r) for r in doc[rows]]}, indent=1) + "\n"
    for name, curve in curves.items():
        text = text.replace(f'"{name}"', curve, 1)
    return text
