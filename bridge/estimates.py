"""What a command's work will cost on this machine, in the units its user reads: seconds and the process's peak
bytes, before the work starts, so that a limit refuses what would take too long or too much memory, and the JSON
prints the estimate beside what was measured.

Every constant below was calibrated on this project's 2-core machine against whole measured runs
(``bridge/benchmarks/cost_model.py`` and ``run_estimate.py``; docs/benchmarks.md shows estimate against measurement
at five sizes). The seconds are a machine's: they were set again on 2026-12-06 on the machine that replaced the
first one, which ran the same work 2-5x faster (one that differs that much needs the benchmarks run anew). Each
estimate prices the command's own work after its input is read (parsing is the user's file, not the model).
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from neural import streamed
from neural.config import Keys
from neural.construction.constructed import ConstructedModel
from neural.construction.tables import TableProgram, Weights


def instance_work(model: ConstructedModel, proved_attention: bool = False) -> float:
    """Multiply-adds of one full-length instance through the whole model: attention over every position pair, and
    the unembedding at every CoT step. The one estimate that prices verify's bounded checks and run's batches.
    With ``proved_attention`` (``neural.construction.selection``) attention is linear in the length: each position's
    projections and FFN, and the spot check's dense rows."""
    from neural.selected import SPOT_CHECK_ROWS

    cfg = model.config
    if proved_attention:
        per_position = cfg.d_model * (4 * cfg.n_heads * cfg.d_head + 2 * cfg.d_ff)
        attention = cfg.n_layers * cfg.max_len * (per_position + cfg.n_heads * SPOT_CHECK_ROWS * cfg.d_head)
    else:
        attention = cfg.n_layers * cfg.max_len ** 2 * cfg.d_model
    return float(attention + model.cot_steps * cfg.vocab_size * cfg.d_model)


# Calibrated on this project's 2-core machine (docs/benchmarks.md, "run's estimate"): the multiply-adds a second
# each path achieves over a whole run (reference evaluation, one pass, argmax and checks included), by where it
# computes (torch: float32 or an IEEE dtype; numpy: F(e,s) itself, below TORCH_WORTH_IT) and by attention kernel
# (the proved one is bound by per-position work, the dense one by the attention products); a run's fixed cost by
# kernel; and the bytes a pass holds per position per unit of its width (residual, q/k/v, FFN hidden, the
# selection's copies), twice that in numpy's float64.
RUN_RATE = {("torch", "dense"): 3.0e10, ("torch", "proved"): 1.0e10, ("numpy", "dense"): 5.0e7,
            ("numpy", "proved"): 2.2e8}
RUN_FIXED_SECONDS = {"dense": 0.02, "proved": 0.08}  # by kernel: the proved one sorts every key code first
PASS_BYTES_PER_WIDTH = {"torch": 8.0, "numpy": 16.0}
TORCH_IMPORT_BYTES = 2.1e8  # what importing torch adds to a process's peak here (10 -> 219 MiB)
NUMPY_BLOCK_COPIES = 4  # float64 arrays of a block's score products live at once in F(e,s) attention
# a streamed pass (``neural.streamed``) holds per position only the sequence, its key index and selections, and the
# reference evaluation and the checks' arrays: 340 bytes measured at 10^6 gates (1.35 -> 1.69 GB)
STREAMED_BYTES_PER_POSITION = 340.0


@dataclass(frozen=True)
class Estimate:
    """What a command's work will cost, in the units its user reads: seconds, and the process's peak bytes."""

    seconds: float
    bytes: float

    def to_json(self) -> dict:
        return {"seconds": round(self.seconds, 2), "bytes": int(self.bytes)}


def run_estimate(model: ConstructedModel, vectors: int, proved_attention: bool, in_torch: bool) -> Estimate:
    """``vectors`` full-length instances of ``model``, computed in torch (``in_torch``) or in numpy F(e,s): seconds
    from ``instance_work`` at the path's measured rate; bytes: what the process holds now (the parsed circuit and
    the built model are in memory already), torch's import if it is still to come, and one pass's activations, a
    pass holding as many rows as ``neural.decoding.ACTIVATIONS_PER_PASS`` allows (at least one)."""
    from neural.decoding import ACTIVATIONS_PER_PASS

    cfg = model.config
    where = "torch" if in_torch else "numpy"
    kernel = "proved" if proved_attention else "dense"
    seconds = RUN_FIXED_SECONDS[kernel] + vectors * instance_work(model, proved_attention) / RUN_RATE[where, kernel]
    rows = min(vectors, max(1, ACTIVATIONS_PER_PASS // max(1, cfg.max_len * cfg.d_model))) if in_torch else 1
    return Estimate(seconds, _peak_bytes(model, rows, in_torch, proved_attention))


TABLE_COPIES = 2  # a program made an array, and the tensor torch copies it into


def pending_table_bytes(model: ConstructedModel) -> float:
    weights = model.weights
    return float(weights.pending_bytes()) if isinstance(weights, Weights) else 0.0


def listed(table) -> int:
    """Entries the embedding check reads one by one: an array's, none of a program's."""
    return 0 if isinstance(table, TableProgram) else int(table.size)


def _peak_bytes(model: ConstructedModel, rows: int, in_torch: bool, proved_attention: bool) -> float:
    """What the process holds now (the parsed circuit and the built model are in memory already), torch's import
    if it is still to come, and one pass's activations over ``rows`` full-length instances."""
    import resource

    cfg = model.config
    width = cfg.d_model + 3 * cfg.n_heads * cfg.d_head + cfg.d_ff
    held = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    if in_torch and "torch" not in sys.modules:  # imported after the work is priced
        held += TORCH_IMPORT_BYTES
    if not in_torch and not proved_attention:  # F(e,s) attention rounds a block of score products at a time
        from neural.construction.fp import PRODUCTS_PER_CHUNK

        held += NUMPY_BLOCK_COPIES * 8.0 * PRODUCTS_PER_CHUNK
    if rows or (in_torch and proved_attention):  # a pass loads the model: its tables still programs become arrays
        held += TABLE_COPIES * pending_table_bytes(model)
    if in_torch and proved_attention and streamed.streams(cfg, cfg.max_len):
        return held + STREAMED_BYTES_PER_POSITION * cfg.max_len + PASS_BYTES_PER_WIDTH["torch"] * (
            1 + cfg.n_heads) * streamed.BLOCK * width
    return held + PASS_BYTES_PER_WIDTH["torch" if in_torch else "numpy"] * rows * cfg.max_len * width


# verify's lemmas: the solver's part is flat in the model's size (a few seconds here: every query is the same at
# every size), the embedding check reads every table entry once (docs/benchmarks.md, "verify's estimate")
PROOF_SECONDS = 1.0
EMBEDDING_SECONDS_PER_ENTRY = 2.5e-8


def verify_estimate(model: ConstructedModel, plan) -> Estimate:
    """verify's work once the model is built (``plan``: its ``bridge.bounded.SimulationPlan``): its lemmas
    (``PROOF_SECONDS``, and the embedding check over the position and token tables) and its bounded checks as
    planned (``SimulationPlan.seconds``); the bytes of the checks' passes, one instance a pass in F(e,s), as many
    as a pass holds in torch."""
    from neural.decoding import ACTIVATIONS_PER_PASS

    cfg = model.config
    # the embedding check reads the position and token tables entry by entry, the readout and the order lemma the
    # unembedding row by row; a table that is a program is compared as one and never listed
    entries = sum(listed(model.table(name)) for name in (Keys.POS_EMB, Keys.TOK_EMB, Keys.weight(Keys.HEAD)))
    rows = min(plan.instances, max(1, ACTIVATIONS_PER_PASS // max(1, cfg.max_len * cfg.d_model))) \
        if plan.in_torch else 1
    return Estimate(PROOF_SECONDS + EMBEDDING_SECONDS_PER_ENTRY * entries + plan.seconds,
                    _peak_bytes(model, rows if plan.instances else 0, plan.in_torch, False))


# compile: building the tables and writing them (safetensors) with the circuit (config.json) a gate at a time
COMPILE_FIXED_SECONDS = 0.02
BUILD_SECONDS_PER_ENTRY = 1.05e-8
SECONDS_PER_GATE = 4.2e-6
BUILD_BYTES_PER_ENTRY = 12.0  # a float32 table and the float64 blocks its representability check rounds
JSON_BYTES_PER_GATE = 160.0  # the gate list as Python objects and as text


def compile_estimate(length: int, vocab: int, width: int, gates: int) -> Estimate:
    """``compile`` once the circuit is read: the construction's tables (``length`` + ``vocab`` rows of ``width``)
    built and written, and the circuit's ``gates`` written into config.json (none for a CVP model)."""
    import resource

    entries = float(length + vocab) * width
    held = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    return Estimate(COMPILE_FIXED_SECONDS + BUILD_SECONDS_PER_ENTRY * entries + SECONDS_PER_GATE * gates,
                    held + BUILD_BYTES_PER_ENTRY * entries + JSON_BYTES_PER_GATE * gates)


# train: the training FLOP a step (``neural.learning.stacked.flops_per_step``) at the rate one process reached here
# with both cores (evaluations included), the start-up (the task's splits, the model, the first evaluation), and
# what autograd and the data hold beyond ``TrainConfig.training_bytes``
TRAIN_FLOPS_PER_SECOND = 1.1e11
TRAIN_FIXED_SECONDS = 1.5
TRAIN_OVERHEAD_BYTES = 1e8


def train_estimate(cfg, seeds: int = 1) -> Estimate:
    """``train`` of ``seeds`` runs of ``cfg`` (a ``neural.learning.runs.TrainConfig``) for its whole budget: an early
    stop ends sooner. Bytes: ``TrainConfig.training_bytes`` for each run, and torch."""
    import resource

    from neural.learning.stacked import flops_per_step

    mc = cfg.model_config(cfg.make_task())
    flops = cfg.steps * flops_per_step(mc, cfg.batch_size, mc.max_len, mc.max_len)
    held = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0
    if "torch" not in sys.modules:
        held += TORCH_IMPORT_BYTES
    return Estimate(TRAIN_FIXED_SECONDS + seeds * flops / TRAIN_FLOPS_PER_SECOND,
                    held + TRAIN_OVERHEAD_BYTES + seeds * cfg.training_bytes())
