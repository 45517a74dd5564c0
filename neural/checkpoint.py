"""Checkpoint directories: ``model.safetensors``, ``config.json`` and ``metrics.jsonl``.

- Loading never unpickles: weights are safetensors (numpy flavour, so the proof path needs no torch), and a
  directory holding a pickle file is refused before anything in it is read.
- Writes are atomic per checkpoint: every file is staged and sealed before any is moved in (``commit``), and a
  load finishes or discards an interrupted write. ``config.json`` records the SHA-256 of the weights, so files
  from different checkpoints are caught on load as a mismatch, never used.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grammar.errors import InputError, SourceLoc
from neural.config import ModelConfig, weight_shapes

WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.jsonl"
STAGING, COMPLETE = ".next", "COMPLETE"  # see commit()
PICKLE_SUFFIXES = (".pt", ".pth", ".pkl", ".pickle", ".bin", ".ckpt")
FORMAT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    config: ModelConfig
    weights: dict[str, np.ndarray]
    meta: dict  # everything else in config.json: kind, task, setting, vocab, seed, construction, ...


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a checkpoint is an ordinary shareable file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def save(directory: str | os.PathLike, config: ModelConfig, weights: dict[str, np.ndarray], meta: dict,
         extra_files: dict[str, bytes] | None = None) -> Path:
    """Write a checkpoint (plus ``extra_files``, such as optimizer state) as one unit: see ``commit``."""
    from safetensors.numpy import save as st_save

    out = Path(directory)
    exact32 = all(np.array_equal(np.asarray(a, dtype=np.float32), a) for a in weights.values())
    dtype = np.float32 if exact32 else np.float64  # never round a constructed weight on its way to disk
    payload = st_save({name: np.ascontiguousarray(a, dtype=dtype) for name, a in weights.items()})
    doc = {"format": FORMAT_VERSION, "model": config.to_dict(), **meta,
           "weights_sha256": hashlib.sha256(payload).hexdigest()}
    commit(out, {**(extra_files or {}), WEIGHTS: payload,
                 CONFIG: (json.dumps(doc, indent=2, default=_jsonable) + "\n").encode()})
    return out


def commit(out: Path, files: dict[str, bytes]) -> None:
    """Replace several files as one. Each file alone is replaced atomically, but a kill between two of them would
    leave weights that the config's hashes do not match; so every file is first written to ``out/.next``, a
    COMPLETE marker seals the set, and only then are they moved in (config last). ``recover`` finishes a sealed
    set that a kill interrupted, and discards an unsealed one, so the directory always holds one whole checkpoint."""
    stage = out / STAGING
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    for name, data in files.items():
        atomic_write_bytes(stage / name, data)
    atomic_write_bytes(stage / COMPLETE, b"")
    _move_in(out)


def _move_in(out: Path) -> None:
    stage = out / STAGING
    names = sorted((p.name for p in stage.iterdir() if p.name != COMPLETE and not p.name.startswith(".")),
                   key=lambda n: n == CONFIG)
    for name in names:
        try:
            os.replace(stage / name, out / name)
        except FileNotFoundError:  # another process finishing the same recovery moved it already
            pass
    shutil.rmtree(stage, ignore_errors=True)


def recover(directory: str | os.PathLike) -> None:
    """Finish or discard a ``commit`` that was interrupted (see there)."""
    stage = Path(directory) / STAGING
    if not stage.is_dir():
        return
    try:
        if (stage / COMPLETE).exists():
            _move_in(Path(directory))
        else:
            shutil.rmtree(stage, ignore_errors=True)
    except OSError:  # a read-only directory: leave it; load() then reports any mismatch it finds
        pass


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")


def append_metrics(directory: str | os.PathLike, record: dict) -> None:
    """One JSON line; appended with a single write so a crash leaves at most a truncated last line."""
    with open(Path(directory) / METRICS, "a") as f:
        f.write(json.dumps(record, default=_jsonable) + "\n")
        f.flush()
        os.fsync(f.fileno())


def refuse_pickles(directory: Path) -> None:
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() in PICKLE_SUFFIXES:
            raise InputError(f"refusing {p.name}: pickle checkpoints can run arbitrary code when loaded; "
                             f"cotproof loads only {WEIGHTS}", SourceLoc(str(p)),
                             expected=f"a directory with {WEIGHTS} and {CONFIG}")


def load(directory: str | os.PathLike) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

    d = Path(directory)
    if not d.is_dir():
        raise InputError("no such checkpoint directory", SourceLoc(str(d)),
                         expected=f"a directory with {WEIGHTS} and {CONFIG}")
    recover(d)
    refuse_pickles(d)
    for name in (CONFIG, WEIGHTS):
        if not (d / name).is_file():
            raise InputError(f"checkpoint has no {name}", SourceLoc(str(d / name)),
                             expected=f"a directory with {WEIGHTS} and {CONFIG}")
    text = (d / CONFIG).read_text()
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"config is not valid JSON: {err.msg}", SourceLoc(str(d / CONFIG), err.lineno, err.colno),
                         expected="a JSON object") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise InputError("config has no 'model' object", SourceLoc(str(d / CONFIG)),
                         expected='{"model": {"vocab_size": ..., "d_model": ...}, ...}')
    try:
        cfg = ModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError) as err:
        raise InputError(f"config 'model' is invalid: {err}", SourceLoc(str(d / CONFIG)),
                         expected="the fields of neural.config.ModelConfig") from None
    payload = (d / WEIGHTS).read_bytes()
    expected_hash = doc.get("weights_sha256")
    if expected_hash is not None and hashlib.sha256(payload).hexdigest() != expected_hash:
        raise InputError(f"{WEIGHTS} does not match {CONFIG} (a partial write, or the files come from different "
                         f"checkpoints)", SourceLoc(str(d / WEIGHTS)), expected="the weights that config.json records")
    try:
        arrays = {k: v.astype(np.float64) for k, v in st_load(payload).items()}
    except (SafetensorError, ValueError, TypeError) as err:  # a bad header, or a dtype float64 cannot hold
        raise InputError(f"{WEIGHTS} is not a valid safetensors file: {err}", SourceLoc(str(d / WEIGHTS)),
                         expected="a safetensors file") from None
    shapes = weight_shapes(cfg)
    missing = sorted(set(shapes) - set(arrays))
    extra = sorted(set(arrays) - set(shapes))
    if missing or extra:
        raise InputError(f"weights do not match the config: missing {missing[:4]}, unexpected {extra[:4]}",
                         SourceLoc(str(d / WEIGHTS)), expected="the tensors the config's architecture needs")
    for name, shape in shapes.items():
        if tuple(arrays[name].shape) != shape:
            raise InputError(f"tensor {name} has shape {tuple(arrays[name].shape)} but the config needs {shape}",
                             SourceLoc(str(d / WEIGHTS)), expected="weights matching config.json")
    meta = {k: v for k, v in doc.items() if k not in ("model", "format", "weights_sha256")}
    return Checkpoint(d, cfg, arrays, meta)


def read_metrics(directory: str | os.PathLike) -> list[dict]:
    p = Path(directory) / METRICS
    if not p.exists():
        return []
    out = []
    for line in p.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a crash mid-append leaves one truncated last line; everything before it is whole
    return out
