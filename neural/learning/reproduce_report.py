"""``results/``'s table and figures, drawn from a reproduction's JSON (``neural.learning.reproduce``): mean over
seeds with the min-max range, the chance levels beside every cell."""
from __future__ import annotations

import io
from collections import Counter

import numpy as np

SETTING_STYLE = {"base": ("o", "--"), "cot": ("s", "-"), "hint": ("^", ":")}


def _by_cell(cells):
    groups: dict[tuple, list[dict]] = {}
    for r in cells:
        groups.setdefault((r["task"], r["setting"], r["layers"], r["length"]), []).append(r)
    return groups


def _fmt(rs) -> str:
    accs = [r["accuracy"] for r in rs]
    text = f"{np.mean(accs):.3f}" + ("*" if any(budget_bound(r) for r in rs) else "")
    if len(accs) > 1:
        text += f" ({min(accs):.2f}–{max(accs):.2f})"
    unsound = [r["unsound_step_rate"] for r in rs if r["unsound_step_rate"] is not None]
    if unsound:
        text += f" u={max(unsound):.3f}"
    return text


def _machines(doc: dict) -> str:
    """Where the cells ran, from each row (a grid resumed elsewhere mixes machines), else the document's."""
    counts = Counter(r.get("machine", doc["machine"]) for r in doc["cells"]) or Counter([doc["machine"]])
    return "; ".join(f"{m} ({n} cells)" if len(counts) > 1 else m for m, n in counts.most_common())


def render_table(doc: dict, profile) -> str:
    groups = _by_cell(doc["cells"])
    planned = _by_cell(doc.get("not_run", []))  # cells of the profile not yet run: shown as such, never blank
    depths = sorted({k[2] for k in groups} | {k[2] for k in planned} | set(profile.depths))
    seeds = sorted({r["seed"] for r in doc["cells"]})
    plateau = "" if not profile.plateau_patience else (
        f", or once {profile.plateau_patience} checks in a row brought neither a new best validation accuracy nor a "
        f"1% lower validation loss (counting checks after step {profile.plateau_from})")
    lines = [f"`cotproof reproduce --profile {doc['profile']}`, commit {doc['commit']}; cells ran on {_machines(doc)}.",
             "",
             f"Greedy accuracy on held-out test prompts; mean over {len(seeds)} seed(s), (min–max) where several; "
             "u = the largest unsound-step rate over the seeds (each CoT token, or each hint read-out, checked "
             "against the step applied to the one before). Chance: the majority answer; for cvp also the shallow "
             "guess from the last gate's type. Every cell of a task had the same step budget "
             f"({', '.join(f'{t} {profile.budget(t)}' for t in profile.tasks)}) and stopped early at validation "
             f"accuracy 0.995{plateau}. * marks a budget-bound cell: a seed used its whole budget without converging."
             + _before_stop_reasons(doc["cells"]),
             "",
             "| task | length | setting | " + " | ".join(f"L={d}" for d in depths) + " | majority | shallow |",
             "|---|---|---|" + "---|" * len(depths) + "---|---|"]
    order = {"modadd": 0, "s5": 1, "isq": 2, "cvp": 3}
    keys = sorted({(k[0], k[3], k[1]) for k in (*groups, *planned)}, key=lambda x: (order.get(x[0], 9), x[1], x[2]))
    for task, length, setting in keys:
        row = [_fmt(groups[(task, setting, d, length)]) if (task, setting, d, length) in groups else
               "not run" if (task, setting, d, length) in planned else "–" for d in depths]
        any_cell = next((r for k, rs in groups.items() if k[0] == task and k[3] == length for r in rs), None)
        chance = ("– | –" if any_cell is None else f"{any_cell['majority_baseline']:.3f} | " +
                  ("–" if any_cell["shallow_baseline"] is None else f"{any_cell['shallow_baseline']:.3f}"))
        lines.append(f"| {task} | {length} | {setting} | " + " | ".join(row) + f" | {chance} |")
    lines += ["", "| task | claim | verdict | evidence |", "|---|---|---|---|"]
    for c in doc["claims"]:
        verdict = {"fails": "**fails**"}.get(c["verdict"], c["verdict"])
        lines.append(f"| {c['task']} | {c['claim']} | {verdict} | {c['evidence']} |")
    steps = [r["steps"] for r in doc["cells"]]
    secs = [r["seconds"] for r in doc["cells"]]
    if steps:
        lines += ["", f"{len(steps)} runs: {min(steps)}–{max(steps)} steps, {sum(secs) / 60:.1f} minutes of training "
                  "in all (per-run steps and seconds are in the JSON)."]
    if doc.get("not_run"):
        lines += ["", (f"{len(doc['not_run'])} cells of the profile have not run (listed in the JSON as \"not run\"); "
                       f"`{doc['finish_with']}` runs them and only them.")]
    return "\n".join(lines) + "\n"


def _figure(n):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, n, figsize=(3.8 * n, 3.4), sharey=True, squeeze=False)
    return plt, fig, list(axes[0])


def _png(plt, fig) -> bytes:
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def _before_stop_reasons(rows: list) -> str:
    """Rows trained before cells converged record no stop reason: the table says how it reads them."""
    old = sum("stop_reason" not in r for r in rows)
    return "" if not old else (f" {old} of the {len(rows)} rows were trained before the plateau rule and record no "
                               "stop reason: those that did not stop early count as budget-bound.")


def budget_bound(row: dict) -> bool:
    """A cell that used its whole budget without converging (``stop_reason`` cap or time limit): more training
    might change its score. Rows from before stop reasons were recorded: those that did not stop early."""
    if "converged" in row:
        return not row["converged"]
    return not row.get("early_stopped")


def _errorbar(ax, xs, groups, label, setting):
    """Mean over seeds with min-max bars; a point is hollow where any of its seeds is budget-bound."""
    means = [np.mean([r["accuracy"] for r in g]) for g in groups]
    lo = [m - min(r["accuracy"] for r in g) for m, g in zip(means, groups)]
    hi = [max(r["accuracy"] for r in g) - m for m, g in zip(means, groups)]
    marker, line = SETTING_STYLE.get(setting, ("x", "-"))
    drawn = ax.errorbar(xs, means, yerr=[lo, hi], ls=line, capsize=3, label=label, marker=marker)
    colour = drawn.lines[0].get_color()
    bound = [any(budget_bound(r) for r in g) for g in groups]
    ax.plot([x for x, b in zip(xs, bound) if b], [m for m, b in zip(means, bound) if b], ls="none",
            marker=marker, markerfacecolor="white", markeredgecolor=colour, zorder=3)


def _hollow_note(fig) -> None:
    fig.text(0.995, 0.005, "hollow: budget-bound (ran its whole step budget without converging)", fontsize=6,
             ha="right", va="bottom", color="grey")


def _chance(ax, cells):
    r = cells[0]
    ax.axhline(r["majority_baseline"], color="grey", lw=0.8, ls=":", label="majority")
    if r["shallow_baseline"] is not None:
        ax.axhline(r["shallow_baseline"], color="tab:red", lw=0.8, ls="-.", label="last gate's type")


def plot_depth(doc: dict, profile) -> bytes | None:
    """Accuracy against depth, one panel per task at its main length, one line per setting, min-max bars."""
    cells = doc["cells"]
    tasks = [t for t in profile.tasks if any(r["task"] == t for r in cells)]
    if not tasks:
        return None
    plt, fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        main = profile.lengths[task][0]
        mine = [r for r in cells if r["task"] == task and r["length"] == main]
        groups = _by_cell(mine)
        for setting in ("base", "cot", "hint"):
            depths = sorted({k[2] for k in groups if k[1] == setting})
            if depths:
                _errorbar(ax, depths, [groups[(task, setting, d, main)] for d in depths], setting, setting)
        if mine:
            _chance(ax, mine)
        ax.set_xscale("log", base=2)
        ticks = sorted({r["layers"] for r in mine}) or list(profile.depths)
        ax.set_xticks(ticks, [str(d) for d in ticks])
        ax.set_title(f"{task} (length {main})")
        ax.set_xlabel("layers")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(fontsize=6, loc="best")
    axes[0].set_ylabel("held-out accuracy")
    _hollow_note(fig)
    return _png(plt, fig)


def plot_length(doc: dict, profile) -> bytes | None:
    """Accuracy against input length for tasks run at several lengths: one line per (setting, depth)."""
    from neural.learning.profiles import LENGTH_PARAM

    cells = doc["cells"]
    tasks = [t for t in profile.tasks if len({r["length"] for r in cells if r["task"] == t}) > 1]
    if not tasks:
        return None
    plt, fig, axes = _figure(len(tasks))
    for ax, task in zip(axes, tasks):
        groups = _by_cell([r for r in cells if r["task"] == task])
        for setting in ("base", "cot", "hint"):
            for depth in sorted({k[2] for k in groups if k[1] == setting}):
                lengths = sorted({k[3] for k in groups if k[1] == setting and k[2] == depth})
                if len(lengths) > 1:
                    _errorbar(ax, lengths, [groups[(task, setting, depth, n)] for n in lengths],
                              f"{setting} L{depth}", setting)
        ax.set_title(task)
        ax.set_xlabel(f"input length ({LENGTH_PARAM[task]})")
        ax.set_ylim(-0.02, 1.02)
    axes[0].set_ylabel("held-out accuracy")
    axes[0].legend(fontsize=6)
    _hollow_note(fig)
    return _png(plt, fig)


def plot_curves(doc: dict, profile) -> bytes | None:
    """Validation accuracy against training step for every scored cell at its task's main length, from the curve
    its row holds: one panel per task, one colour per (setting, depth), one line per seed. Rows scored before rows
    held their curves are counted in a note, not drawn."""
    curves: dict[str, list] = {}
    without = 0
    for r in doc["cells"]:
        if r["length"] != profile.lengths[r["task"]][0]:
            continue
        if r.get("validation_curve"):
            steps, accs = zip(*r["validation_curve"])
            curves.setdefault(r["task"], []).append((r, ("validation", list(steps), list(accs))))
        else:
            without += 1
    tasks = [t for t in profile.tasks if t in curves]
    if not tasks:
        return None
    plt, fig, axes = _figure(len(tasks))
    colours = {}
    for ax, task in zip(axes, tasks):
        kinds, labelled = set(), set()
        for r, (kind, steps, accs) in sorted(curves[task], key=lambda rc: (rc[0]["setting"], rc[0]["layers"],
                                                                           rc[0]["seed"])):
            key = (r["setting"], r["layers"])
            colour = colours.setdefault(key, f"C{len(colours) % 10}")
            ax.plot(steps, accs, color=colour, ls=SETTING_STYLE.get(r["setting"], ("x", "-"))[1], lw=1,
                    label=None if key in labelled else f"{r['setting']} L{r['layers']}")
            labelled.add(key)
            kinds.add(kind)
        ax.set_title(f"{task} (length {profile.lengths[task][0]})")
        ax.set_xlabel("step")
        ax.set_ylim(-0.02, 1.02)
        ax.set_ylabel(" / ".join(sorted(kinds)) + " accuracy", fontsize=7)
        ax.legend(fontsize=6, loc="best")
    if without:
        fig.text(0.01, 0.01, f"{without} cells scored before rows kept their learning curves are not drawn",
                 fontsize=7, ha="left", va="bottom")
    return _png(plt, fig)


def plot_ablation_curves(doc: dict) -> bytes | None:
    """An ablation's runs' validation accuracy against step, one line per run that kept its curve (runs trained to
    convergence do): what a finding about steps or width is read from."""
    runs = [r for r in doc["runs"] if r.get("validation_curve")]
    if not runs:
        return None
    plt, fig, (ax,) = _figure(1)
    fig.set_size_inches(7.0, 3.8)
    for i, r in enumerate(runs):
        steps, accs = zip(*r["validation_curve"])
        ax.plot(steps, accs, color=f"C{i % 10}", lw=1, label=f"{r['label']}: test {r['accuracy']:.3f}")
    ax.set_title(doc["ablation"])
    ax.set_xlabel("step")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.legend(fontsize=6, loc="lower right")
    return _png(plt, fig)
