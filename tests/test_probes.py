"""Every way in, as a careless or hostile user meets it: bad files, bad flags, enormous requests, concurrent writers,
and what scripts rely on. Each probe asserts the exit status of the README's table, that no traceback was printed,
and where the message points. Resource probes run in a subprocess under an address-space limit and a time limit,
so a probe that swallows memory or time fails instead of taking the machine down."""
from __future__ import annotations

import hashlib
import json
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import ROOT, in_process
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import output
from bridge.commands.main import build_parser
from bridge.commands.main import main as cli_main
from grammar.errors import InputError

ADDRESS_SPACE = 3 << 30  # bytes: torch and z3 load in far less; a request that would need more must be refused
PROBE_SECONDS = 120  # a refusal comes in seconds; a probe that hits this ran unbounded work
OK, FAILED, BAD, UNKNOWN, INTERNAL = (output.EXIT_OK, output.EXIT_FAILED, output.EXIT_BAD_INPUT, output.EXIT_UNKNOWN,
                                      output.EXIT_INTERNAL)


def _limit_address_space():
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def probe(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=PROBE_SECONDS, preexec_fn=_limit_address_space)


def assert_clean(proc: subprocess.CompletedProcess, status: int, *located: str) -> None:
    """The status from the table, no traceback anywhere, and every ``located`` text in the message."""
    assert proc.returncode == status, f"exit {proc.returncode}, wanted {status}:\n{proc.stderr[-3000:]}"
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    if status == BAD:  # one message, not a dump
        assert len(proc.stderr) < 3000, proc.stderr[:3000]
    for text in located:
        assert text in proc.stderr, f"{text!r} not in:\n{proc.stderr[-3000:]}"


def tree(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` with its content hash: what 'nothing changed' means."""
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(directory.rglob("*"))}


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("compiled") / "c17"
    assert_clean(probe("compile", "circuits/c17.bench", "--out", str(out)), OK)
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "run"
    assert_clean(probe("train", "--task", "modadd", "--param", "length=3", "--d-model", "16", "--heads", "2",
                       "--steps", "3", "--batch-size", "8", "--out", str(out), "--json"), OK)
    return out


def edited_checkpoint(source: Path, where: Path, **changes) -> Path:
    """A copy of ``source`` whose config.json has ``model`` fields (or, with a ``meta_`` prefix, top-level
    fields) replaced."""
    shutil.copytree(source, where)
    doc = json.loads((where / "config.json").read_text())
    for key, value in changes.items():
        if key.startswith("meta_"):
            doc[key[5:]] = value
        else:
            doc["model"][key] = value
    (where / "config.json").write_text(json.dumps(doc))
    return where


# ---- bad input: one located message, exit 2 -----------------------------------------------------------------

def _latin1_spec(tmp: Path) -> tuple[list[str], list[str]]:
    text = (ROOT / "specs/c17.lark").read_bytes().replace(b"\n", b"\n# caf\xe9\n", 1)
    (tmp / "circuits").mkdir()
    shutil.copy(ROOT / "circuits/c17.bench", tmp / "circuits/c17.bench")
    (tmp / "specs").mkdir()
    (tmp / "specs/latin1.lark").write_bytes(text)
    return ["verify", str(tmp / "specs/latin1.lark")], ["latin1.lark:2:6", "not UTF-8", "byte"]


def _latin1_netlist(tmp: Path):
    (tmp / "x.bench").write_bytes(b"INPUT(a)\nOUTPUT(b)\n# \xff\xfe\nb = NOT(a)\n")
    return ["circuit", "info", str(tmp / "x.bench")], ["x.bench:3:3", "not UTF-8"]


def _bom_netlist(tmp: Path):
    (tmp / "x.bench").write_bytes(b"\xef\xbb\xbfINPUT(a)\nOUTPUT(b)\nb = NOT(a)\n")
    return ["circuit", "info", str(tmp / "x.bench")], []


def _flat_verilog(tmp: Path):
    (tmp / "flat.v").write_text("module m(a, y); input a; output y; assign y = " + " & ".join(["a"] * 5000)
                                + "; endmodule\n")
    return ["circuit", "info", str(tmp / "flat.v")], []


def _nested_verilog(tmp: Path):
    (tmp / "deep.v").write_text("module m(a, y); input a; output y; assign y = " + "~(" * 5000 + "a"
                                + ")" * 5000 + "; endmodule\n")
    return ["circuit", "info", str(tmp / "deep.v")], []


def _damaged_results(tmp: Path):
    (tmp / "res").mkdir()
    (tmp / "res/quick.json").write_text('{"cells": [\n  {"task": "s5",\n')
    return ["reproduce", "--results", str(tmp / "res"), "--out", str(tmp / "runs")], ["quick.json:3:"]


def _binary_results(tmp: Path):
    (tmp / "res").mkdir()
    (tmp / "res/quick.json").write_bytes(b'{"cells": []}\x80')
    return ["reproduce", "--results", str(tmp / "res"), "--out", str(tmp / "runs")], ["quick.json:1:14", "UTF-8"]


def _vectors_bad_byte(tmp: Path):
    (tmp / "v.txt").write_bytes(b"10110\n10\xc30\n")
    return ["circuit", "eval", "circuits/c17.bench", "--vectors", str(tmp / "v.txt")], ["v.txt:2:3"]


def _huge_token(tmp: Path):
    (tmp / "wide.blif").write_text(".model m\n.inputs a\n.outputs y\n.names a y\n" + "1" * 100_000 + " 1\n.end\n")
    return ["circuit", "info", str(tmp / "wide.blif")], ["wide.blif:5:1", "100,000 characters"]


def _huge_aiger_header(tmp: Path):
    (tmp / "big.aig").write_bytes(b"aig 2000000000 2 0 1 1999999998\n2\n")
    return ["circuit", "info", str(tmp / "big.aig")], ["big.aig:byte"]


def _directory_as_netlist(tmp: Path):
    (tmp / "d.bench").mkdir()
    return ["circuit", "info", str(tmp / "d.bench")], ["d.bench", "is a directory"]


FILE_CASES = [_latin1_spec, _latin1_netlist, _damaged_results, _binary_results, _vectors_bad_byte,
              _directory_as_netlist, _huge_token, _huge_aiger_header]
FINE_CASES = [_bom_netlist, _flat_verilog, _nested_verilog]


@pytest.mark.parametrize("make", FILE_CASES, ids=lambda f: f.__name__.strip("_"))
def test_a_bad_file_is_one_located_message(tmp_path, make):
    argv, located = make(tmp_path)
    assert_clean(in_process(*argv), BAD, *located)


def test_a_bad_file_in_a_real_process_too(tmp_path):
    argv, located = _latin1_spec(tmp_path)
    assert_clean(probe(*argv), BAD, *located)


@pytest.mark.parametrize("make", FINE_CASES, ids=lambda f: f.__name__.strip("_"))
def test_what_is_valid_however_odd_is_read(tmp_path, make):
    argv, _ = make(tmp_path)
    assert_clean(in_process(*argv), OK)


FLAG_CASES = [
    (["verify", "specs/c17.lark", "--timeout", "nan"], "--timeout"),
    (["verify", "specs/c17.lark", "--timeout", "inf"], "--timeout"),
    (["verify", "specs/c17.lark", "--timeout", "0"], "--timeout"),
    (["verify", "specs/c17.lark", "--timeout", "-1"], "--timeout"),
    (["equiv", "circuits/c17.bench", "circuits/c17.bench", "--conflicts", "-5"], "--conflicts"),
    (["train", "--task", "modadd", "--layers", "0", "--out", "never"], "--layers"),
    (["train", "--task", "modadd", "--layers", "-1", "--out", "never"], "--layers"),
    (["train", "--task", "modadd", "--batch-size", "0", "--out", "never"], "--batch-size"),
    (["train", "--task", "modadd", "--steps", "-1", "--out", "never"], "--steps"),
    (["train", "--task", "modadd", "--save-every", "0", "--out", "never"], "--save-every"),
    (["train", "--task", "modadd", "--lr", "nan", "--out", "never"], "--lr"),
    (["eval", "never", "--samples", "0"], "--samples"),
    (["reproduce", "--jobs", "0"], "--jobs"),
    (["circuit", "eval", "circuits/c17.bench", "--random", "-3"], "--random"),
    (["run", "circuits/c17.bench", "--inputs", "10110", "--ieee", "float64"], "--ieee"),
    (["spec", "check", "specs/c17.lark", "--override", "key_scale=1", "--override", "key_scale=2"], "twice"),
    (["verify", "specs/c17.lark", "--override", "random.instances=-1"], "random.instances"),
    (["verify", "specs/c17.lark", "--override", "random.instances=" + "9" * 400], "400 characters"),
    (["audit", "never", "--samples", "1" * 100], "too large"),
    (["verify", "specs/c17.lark", "--emit-smt2", "/dev/null/x"], "--emit-smt2"),
    (["audit", "never", "--plots", "/dev/null/x"], "--plots"),
]


@pytest.mark.parametrize("argv,located", FLAG_CASES, ids=lambda x: " ".join(x) if isinstance(x, list) else None)
def test_an_invalid_value_is_refused_before_any_work(argv, located):
    assert_clean(in_process(*argv), BAD, located)


@pytest.mark.parametrize("changes,located", [
    ({"n_layers": "two"}, "n_layers"), ({"d_head": None}, "d_head"), ({"activation": "tanh"}, "activation"),
    ({"attn_scale": "NaN"}, "attn_scale"), ({"layernorm": 1}, "layernorm"), ({"vocab_size": -3}, "vocab_size"),
])
def test_a_checkpoint_config_with_wrong_types_is_refused(compiled, tmp_path, changes, located):
    bad = edited_checkpoint(compiled, tmp_path / "bad", **changes)
    assert_clean(in_process("audit", str(bad)), BAD, "config.json", located)


def test_a_trained_checkpoint_naming_an_unknown_setting_is_refused(trained, tmp_path):
    bad = edited_checkpoint(trained, tmp_path / "bad", meta_setting=7)
    assert_clean(in_process("eval", str(bad), "--samples", "5"), BAD, "config.json", "setting")


def test_a_non_utf8_config_and_an_unreadable_weights_file_are_refused(compiled, tmp_path):
    bad = shutil.copytree(compiled, tmp_path / "bad")
    (bad / "config.json").write_bytes(b'{"model": \xff}')
    assert_clean(in_process("audit", str(bad)), BAD, "config.json", "UTF-8")
    worse = shutil.copytree(compiled, tmp_path / "worse")
    (worse / "model.safetensors").unlink()
    (worse / "model.safetensors").mkdir()
    assert_clean(in_process("audit", str(worse)), BAD, "model.safetensors")


def test_an_overflowing_format_is_a_verdict_not_a_crash():
    """F(3,3) cannot hold the construction's values: the proof refutes it, and the replay says what it could not
    replay rather than crashing on a NaN witness."""
    proc = in_process("verify", "specs/cvp.lark", "--override", "ebits=3", "--override", "sbits=3", "--json")
    assert_clean(proc, FAILED)
    assert json.loads(proc.stdout)["status"] == "refuted"


# ---- enormous requests: refused with the estimate, in seconds, within the address-space limit ----------------

@pytest.mark.parametrize("request_", [
    "dev_zero", "huge_layers_checkpoint", "huge_cell", "huge_max_gates", "huge_instances", "huge_exhaustive",
    "huge_training",
])
def test_an_enormous_request_is_refused_with_its_estimate(compiled, tmp_path, request_):
    if request_ == "dev_zero":
        (tmp_path / "zero.bench").symlink_to("/dev/zero")
        argv, located = ["circuit", "info", str(tmp_path / "zero.bench")], ["zero.bench", "--no-limit"]
    elif request_ == "huge_layers_checkpoint":
        bad = edited_checkpoint(compiled, tmp_path / "big", n_layers=1_000_000_000)
        argv, located = ["audit", str(bad)], ["config.json", "memory", "--no-limit"]
    elif request_ == "huge_cell":
        argv, located = ["reproduce", "--cells", "s5:cot:1000000", "--out", str(tmp_path / "r"), "--results",
                         str(tmp_path / "res")], ["s5:cot:1000000", "memory"]
    elif request_ == "huge_max_gates":
        argv, located = ["compile", "specs/cvp.lark", "--override", "max_gates=1048576", "--out",
                         str(tmp_path / "m")], ["cvp.lark", "memory"]
    elif request_ == "huge_instances":
        argv, located = ["verify", "specs/c17.lark", "--override", "random.instances=100000000"], ["would simulate"]
    elif request_ == "huge_exhaustive":
        argv, located = ["verify", "specs/cvp.lark", "--override", "claims.end_to_end.max_gates=8"], ["would simulate"]
    else:
        argv, located = ["train", "--task", "s5", "--layers", "100000000", "--out", str(tmp_path / "t")], ["memory"]
    assert_clean(probe(*argv), BAD, *located)
    assert not (tmp_path / "t").exists() and not (tmp_path / "m").exists()


def test_no_limit_lifts_the_input_cap(tmp_path, monkeypatch):
    from grammar import limits, source

    monkeypatch.setattr(limits, "INPUT_BYTES", 16)
    (tmp_path / "x.bench").write_text("INPUT(a)\nOUTPUT(b)\nb = NOT(a)\n")
    with pytest.raises(InputError, match="input size limit"):
        source.read_text(tmp_path / "x.bench")
    monkeypatch.setattr(limits, "_lifted", True)
    assert "NOT" in source.read_text(tmp_path / "x.bench")


def test_progress_shows_on_stderr_when_work_is_long(capsys):
    from bridge.progress import Progress

    clock = iter(range(0, 1000, 4)).__next__  # four seconds a step
    with Progress(100, "step", "CoT", clock=clock, tty=False) as p:
        p.update()
        assert capsys.readouterr().err == ""  # the first seconds stay quiet
        for _ in range(9):
            p.update()
    err = capsys.readouterr().err
    assert "CoT: " in err and "steps/s" in err and "to go" in err


# ---- nothing lost -----------------------------------------------------------------------------------------------

def test_train_refuses_to_overwrite_a_checkpoint(trained):
    before = tree(trained)
    proc = in_process("train", "--task", "modadd", "--param", "length=3", "--steps", "3", "--out", str(trained))
    assert_clean(proc, BAD, str(trained), "--resume", "--force")
    assert tree(trained) == before


def test_resume_with_other_settings_names_the_setting(trained):
    proc = in_process("train", "--task", "modadd", "--param", "length=3", "--d-model", "16", "--heads", "2",
                      "--steps", "3", "--batch-size", "8", "--lr", "0.5", "--out", str(trained), "--resume")
    assert_clean(proc, BAD, "lr 0.002 (checkpoint) vs 0.5 (now)")


def test_concurrent_compiles_to_one_directory_never_collide(tmp_path):
    out = tmp_path / "shared"
    for _ in range(3):
        procs: list = [None, None]

        def go(i, procs=procs):
            procs[i] = probe("compile", "circuits/c17.bench" if i else "specs/cvp.lark", "--out", str(out))

        threads = [threading.Thread(target=go, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for proc in procs:
            assert_clean(proc, OK)
        from neural import checkpoint

        checkpoint.load(out)  # one whole checkpoint, hashes and all: the last complete write
        assert not [p for p in out.iterdir() if p.name.startswith(".next")]


def test_reading_a_checkpoint_changes_nothing_even_mid_recovery(trained, tmp_path):
    """A sealed write that a kill interrupted is read through by eval, and left for the next writer to finish."""
    ck = shutil.copytree(trained, tmp_path / "ck")
    stage = ck / ".next-999999-killed"
    stage.mkdir()
    shutil.copy(ck / "config.json", stage / "config.json")
    (stage / "COMPLETE").write_bytes(b"")
    before = tree(ck)
    assert_clean(in_process("eval", str(ck), "--samples", "5"), OK)
    assert tree(ck) == before


def test_a_reproduce_that_trains_nothing_writes_nothing(tmp_path):
    results = shutil.copytree(ROOT / "results", tmp_path / "results")
    def files():
        return {str(p.relative_to(results)): (p.read_bytes(), p.stat().st_mtime_ns)
                for p in results.rglob("*") if p.is_file()}

    before = files()
    proc = in_process("reproduce", "--quick", "--results", str(results), "--out", str(tmp_path / "runs"))
    assert_clean(proc, OK)
    assert "nothing trained, nothing written" in proc.stdout and "--rerun" in proc.stdout
    assert files() == before and "ablations/metrics.json" in before
    assert not (tmp_path / "runs").exists()


# ---- the contract for scripts -------------------------------------------------------------------------------

def test_the_exit_code_table_is_the_readmes():
    readme = (ROOT / "README.md").read_text()
    for code, meaning in ((OK, "success"), (FAILED, "wrong"), (BAD, "bad input"), (UNKNOWN, "unknown"),
                          (INTERNAL, "internal error")):
        assert f"| {code} |" in readme and meaning in readme.lower()


@pytest.mark.parametrize("raised,status,tag", [
    (InputError("bad"), BAD, "bad_input"), (output.Undecided("timeout"), UNKNOWN, "unknown"),
    (RuntimeError("a bug"), INTERNAL, "internal_error"), (MemoryError(), BAD, "bad_input"),
])
def test_every_ending_maps_onto_the_table_and_json_stays_json(capsys, raised, status, tag):
    import argparse

    def command(args):
        raise raised

    assert output.run_command(command, argparse.Namespace(json=True)) == status
    captured = capsys.readouterr()
    assert json.loads(captured.out)["status"] == tag
    assert ("Traceback" in captured.err) == (status == INTERNAL)  # only a bug shows its traceback


def test_equiv_json_prints_json_when_unknown(monkeypatch, capsys):
    from formal import aig, sat
    from formal.equivalence import UNKNOWN as UNDECIDED
    from formal.equivalence import Equivalence

    monkeypatch.setattr(aig, "equivalent", lambda *a, **k: Equivalence(UNDECIDED, method="sweeping", reason="budget"))
    monkeypatch.setattr(sat, "equivalent", lambda *a, **k: Equivalence(UNDECIDED, method=sat.MITER, reason="time"))
    assert cli_main(["equiv", "circuits/c17.bench", "circuits/c17.bench", "--json"]) == UNKNOWN
    assert json.loads(capsys.readouterr().out) == {"equivalent": None, "status": "unknown", "counterexample": None,
                                                   "methods": ["sweeping", "plain CNF miter (PySAT)"]}


def test_cross_check_before_the_spec_does_not_swallow_it():
    parse = build_parser().parse_args
    args = parse(["verify", "--cross-check", "specs/c17.lark"])
    assert args.cross_check == "cvc5" and args.stray_spec == "specs/c17.lark" and args.spec is None
    args = parse(["verify", "--cross-check", "cvc5,bitwuzla", "specs/c17.lark"])
    assert args.cross_check == "cvc5,bitwuzla" and args.spec == "specs/c17.lark"


def test_a_closed_pipe_ends_quietly():
    proc = subprocess.Popen([sys.executable, "-m", "bridge.cli", "circuit", "eval", "circuits/c17.bench", "--random",
                             "200000"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.readline()
    proc.stdout.close()  # `| head -1`
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == OK and "Traceback" not in err and "BrokenPipe" not in err


def _commands(parser, prefix=()):
    for action in parser._actions:
        if isinstance(action, __import__("argparse")._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*prefix, name))
    if prefix and parser.get_default("func") is not None:
        yield prefix, parser


def test_every_command_shows_its_defaults_and_takes_no_limit():
    commands = list(_commands(build_parser()))
    assert len(commands) >= 14
    for name, parser in commands:
        text = parser.format_help()
        assert "--no-limit" in text, name
    assert "(default: 5000)" in dict(commands)[("train",)].format_help()  # no 100,000-step surprise


# ---- hypothesis: the large spaces ---------------------------------------------------------------------------

def _in_process(argv: list[str], capsys) -> int:
    try:
        status = cli_main(argv)
    except SystemExit as stop:  # argparse's own exit 2
        status = stop.code
    err = capsys.readouterr().err
    assert "Traceback" not in err and "internal error" not in err, err
    return status


NUMBERS = st.one_of(st.integers(-10 ** 20, 10 ** 20).map(str), st.floats(allow_nan=True).map(repr),
                    st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "", " ", "1_000", "٣", "--", "None"]),
                    st.text(max_size=8))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(flag=st.sampled_from(["--layers", "--d-model", "--heads", "--d-ff", "--lr", "--weight-decay",
                             "--batch-size", "--steps", "--warmup", "--time-limit", "--seed", "--save-every",
                             "--seeds"]), value=NUMBERS)
def test_any_training_flag_value_is_validated_or_accepted(tmp_path_factory, capsys, flag, value):
    """``--out`` lies under a file, so a value that passes validation is then refused as an unwritable place,
    before the first step: either way exit 2, and no training starts."""
    blocked = tmp_path_factory.mktemp("blocked") / "file"
    blocked.write_text("")
    assert _in_process(["train", "--task", "modadd", flag, value, "--out", str(blocked / "run")], capsys) == BAD


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(flag=st.sampled_from(["--timeout", "--conflicts"]), value=NUMBERS)
def test_any_solver_flag_value_is_validated_or_accepted(capsys, flag, value):
    status = _in_process(["equiv", "circuits/c17.bench", "does/not/exist.bench", flag, value], capsys)
    assert status == BAD


OVERRIDE_KEYS = ["ebits", "sbits", "key_scale", "max_gates", "mode", "random.instances", "random.seed",
                 "random.max_gates", "claims.end_to_end.max_gates", "claims.end_to_end.max_inputs",
                 "claims.retrieval.unrolled_k", "task.length", "nonsense", "", "a.b.c"]


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(items=st.lists(st.tuples(st.sampled_from(OVERRIDE_KEYS), NUMBERS), max_size=3))
def test_any_override_is_validated_or_accepted(capsys, items):
    argv = ["spec", "check", "specs/cvp.lark"]
    for key, value in items:
        argv += ["--override", f"{key}={value}"]
    assert _in_process(argv, capsys) in (OK, BAD)


FIELD_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-3, 10 ** 15), st.floats(allow_nan=True),
                         st.text(max_size=5), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.none(),
                                                                                                   max_size=1))


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck))
@given(field=st.sampled_from(["vocab_size", "max_len", "d_model", "n_layers", "n_heads", "d_head", "d_ff",
                              "activation", "layernorm", "bias", "attn_scale", "unknown_field"]), value=FIELD_VALUES)
def test_any_config_field_loads_or_is_refused(compiled, tmp_path_factory, field, value):
    from neural import checkpoint

    bad = edited_checkpoint(compiled, tmp_path_factory.mktemp("cfg") / "ck", **{field: value})
    try:
        checkpoint.load(bad)
    except InputError as err:
        assert "config.json" in str(err) or "model.safetensors" in str(err)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(suffix=st.sampled_from(["bench", "blif", "v", "aag", "lark"]), at=st.integers(0, 10 ** 6),
       junk=st.binary(min_size=1, max_size=4))
def test_any_bytes_in_any_text_input_give_a_located_message(tmp_path_factory, suffix, at, junk):
    from bridge.target import load_target

    source = {"bench": "circuits/c17.bench", "blif": "circuits/ctrl.blif", "v": "circuits/ctrl.v",
              "aag": "circuits/full_adder.aag", "lark": "specs/c17.lark"}[suffix]
    data = (ROOT / source).read_bytes()
    at %= len(data) + 1
    directory = tmp_path_factory.mktemp("enc")
    shutil.copytree(ROOT / "circuits", directory / "circuits")
    (directory / "specs").mkdir()
    path = directory / source
    path.write_bytes(data[:at] + junk + data[at:])
    try:
        load_target(str(path))
    except InputError as err:
        assert str(err).startswith(str(path)) or "cannot load circuit" in str(err), str(err)
