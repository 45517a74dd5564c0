"""Checkpoint directories: ``model.safetensors``, ``config.json`` and ``metrics.jsonl``.

- Loading never unpickles: weights are safetensors (numpy flavour, so the proof path needs no torch), and a
  directory holding a pickle file is refused before anything in it is read.
- Writes are atomic per checkpoint: every file is staged and sealed before any is moved in (``commit``). Each
  writer stages in a folder of its own and moves in under a lock, so concurrent writers never mix their files:
  the last complete write wins. The next writer finishes or discards an interrupted write (``recover``).
- Loading is read-only: a sealed write that a kill interrupted is read through, never moved. ``config.json``
  records the SHA-256 of the weights, so files from different checkpoints are caught as a mismatch, never used.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grammar.errors import InputError, SourceLoc
from grammar.source import parse_json, read_bytes, read_text
from neural.config import ModelConfig, weight_shapes

WEIGHTS, CONFIG, METRICS = "model.safetensors", "config.json", "metrics.jsonl"
STAGING, COMPLETE, LOCK = ".next", "COMPLETE", ".lock"  # see commit(); a writer stages in .next-<pid>-<random>
MODEL_BYTES_PER_WEIGHT = 24  # float64 arrays on load, a float32 torch copy, and room for one more while converting
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
    commit(out, {**(extra_files or {}), WEIGHTS: payload, CONFIG: (_config_json(doc) + "\n").encode()})
    return out


READABLE_CONFIG_BYTES = 1 << 20


def _config_json(doc: dict) -> str:
    """Indented for reading, unless it is large (a compiled circuit's gates): json's indenting encoder is pure
    Python, about ten times slower than its C one (3 s of a 10^5-gate compile)."""
    compact = json.dumps(doc, default=_jsonable, separators=(",", ":"))
    return compact if len(compact) > READABLE_CONFIG_BYTES else json.dumps(doc, indent=2, default=_jsonable)


def commit(out: Path, files: dict[str, bytes]) -> None:
    """Replace several files as one. Each file alone is replaced atomically, but a kill between two of them would
    leave weights that the config's hashes do not match; so every file is first written to a staging folder of
    this writer's own (``.next-<pid>-*``), a COMPLETE marker seals the set, and only then are they moved in,
    config last, under an exclusive lock. ``recover`` finishes a sealed set that a kill interrupted and discards
    an unsealed one whose writer is gone, so the directory always holds one whole checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    recover(out)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING}-{os.getpid()}-"))
    try:
        for name, data in files.items():
            atomic_write_bytes(stage / name, data)
        atomic_write_bytes(stage / COMPLETE, b"")
        with _locked(out, exclusive=True):
            _move_in(stage, out)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def _locked(directory: Path, exclusive: bool):
    """An advisory lock on ``directory/.lock``: writers hold it exclusively while moving files in, readers shared
    while reading. A reader never creates the lock file (a read-only command changes nothing)."""
    try:
        import fcntl
    except ImportError:  # no flock on this platform: staging alone still keeps each write whole
        yield
        return
    path = directory / LOCK
    if not exclusive and not path.exists():
        yield
        return
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if exclusive else os.O_RDONLY, 0o644)
    except OSError:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def _move_in(stage: Path, out: Path) -> None:
    names = sorted((p.name for p in stage.iterdir() if p.name != COMPLETE and not p.name.startswith(".")),
                   key=lambda n: n == CONFIG)
    for name in names:
        try:
            os.replace(stage / name, out / name)
        except FileNotFoundError:  # another process finishing the same recovery moved it already
            pass
    shutil.rmtree(stage, ignore_errors=True)


def _stages(directory: Path) -> list[Path]:
    """Staging folders in ``directory``, oldest first."""
    found = []
    for p in directory.glob(f"{STAGING}*"):
        try:  # another writer may finish and remove its folder between the listing and this look
            if p.is_dir():
                found.append((p.stat().st_mtime, p.name, p))
        except FileNotFoundError:
            continue
    return [p for _, _, p in sorted(found)]


def _writer_alive(stage: Path) -> bool:
    """Whether the process that named this staging folder still runs (``.next-<pid>-*``); the old single-name
    ``.next`` has no owner."""
    parts = stage.name.split("-")
    if len(parts) < 3 or not parts[1].isdigit():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but belongs to someone else
        return True
    return True


def recover(directory: str | os.PathLike) -> None:
    """For writers: finish sealed writes that a kill interrupted (oldest first, so the newest wins) and discard
    unsealed ones. Only folders whose writer is gone: a live writer's folder, sealed or not, is its own to move."""
    d = Path(directory)
    if not d.is_dir():
        return
    try:
        with _locked(d, exclusive=True):
            for stage in _stages(d):
                if _writer_alive(stage):
                    continue
                if (stage / COMPLETE).exists():
                    _move_in(stage, d)
                else:
                    shutil.rmtree(stage, ignore_errors=True)
    except OSError:  # a read-only directory: leave it; load() reads through a sealed stage anyway
        pass


def _sealed_view(d: Path) -> dict[str, Path]:
    """Where a reader finds each file: in the newest sealed staging folder if a write was interrupted after
    sealing (its files are the checkpoint that was being committed), else in the directory itself."""
    sealed = [s for s in _stages(d) if (s / COMPLETE).exists()]
    view = {name: d / name for name in (CONFIG, WEIGHTS)}
    if sealed:
        for name in view:
            if (sealed[-1] / name).is_file():
                view[name] = sealed[-1] / name
    return view


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
    """The checkpoint in ``directory``, checked (schema, size, hash, shapes) and changing nothing there."""
    d = Path(directory)
    if not d.is_dir():
        raise InputError("no such checkpoint directory", SourceLoc(str(d)),
                         expected=f"a directory with {WEIGHTS} and {CONFIG}")
    refuse_pickles(d)
    with _locked(d, exclusive=False):
        view = _sealed_view(d)
        for name in (CONFIG, WEIGHTS):
            if not view[name].is_file():
                raise InputError(f"checkpoint has no {name}", SourceLoc(str(d / name)),
                                 expected=f"a directory with {WEIGHTS} and {CONFIG}")
        text = read_text(view[CONFIG], "checkpoint config")
        doc, cfg = _config(d, text)
        payload = read_bytes(view[WEIGHTS], "checkpoint weights", cap=_weights_cap(cfg))
    return _checkpoint(d, doc, cfg, payload)


def _config(d: Path, text: str) -> tuple[dict, ModelConfig]:
    doc = parse_json(text, d / CONFIG, "config", "a JSON object")
    if not isinstance(doc, dict) or not isinstance(doc.get("model"), dict):
        raise InputError("config has no 'model' object", SourceLoc(str(d / CONFIG)),
                         expected='{"model": {"vocab_size": ..., "d_model": ...}, ...}')
    try:
        cfg = ModelConfig.from_dict(doc["model"])
    except (TypeError, ValueError) as err:
        raise InputError(f"config 'model' is invalid: {err}", SourceLoc(str(d / CONFIG)),
                         expected="the fields of neural.config.ModelConfig") from None
    from grammar.limits import require_memory

    require_memory(MODEL_BYTES_PER_WEIGHT * cfg.parameter_count(),
                   f"a model of {cfg.parameter_count():,} weights ({cfg.n_layers:,} layers, d_model {cfg.d_model:,})",
                   SourceLoc(str(d / CONFIG)), "a config.json that matches the weights beside it")
    return doc, cfg


def _weights_cap(cfg: ModelConfig) -> int:
    """A weights file larger than float64 storage of the config's weights plus a generous header is not this
    model's (and must not be read whole to find that out)."""
    return 8 * cfg.parameter_count() + (1 << 20) + 512 * (16 * cfg.n_layers + 8)


def _checkpoint(d: Path, doc: dict, cfg: ModelConfig, payload: bytes) -> Checkpoint:
    from safetensors import SafetensorError
    from safetensors.numpy import load as st_load

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
    for line in read_text(p, "metrics file").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a crash mid-append leaves one truncated last line; everything before it is whole
    return out
