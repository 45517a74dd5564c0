"""Golden error messages: one InputError with file:line:column, offending text and expectation.
Regenerate with COTPROOF_UPDATE_GOLDEN=1 after reading every diff."""
import os
from pathlib import Path

import pytest
from helpers import ROOT, cli

from grammar.errors import InputError
from grammar.netlist import load_netlist
from grammar.spec import parse_spec

GOLDEN = Path(__file__).parent / "golden" / "errors"
CASES = sorted(p for p in GOLDEN.iterdir() if p.suffix in (".bench", ".aag", ".aig", ".blif", ".v", ".lark"))


def _load(path: Path):
    return parse_spec(path) if path.suffix == ".lark" else load_netlist(path)


@pytest.mark.parametrize("case", CASES, ids=lambda p: p.name)
def test_error_message_is_golden(case):
    with pytest.raises(InputError) as info:
        _load(case.relative_to(ROOT) if case.is_relative_to(ROOT) else case)
    message = str(info.value)
    expected_file = case.with_suffix(case.suffix + ".expected")
    if os.environ.get("COTPROOF_UPDATE_GOLDEN"):
        expected_file.write_text(message + "\n")
    assert message == expected_file.read_text().rstrip("\n")
    assert "__ANON" not in message
    loc = info.value.loc
    assert loc is not None and (loc.line > 0 or loc.byte is not None), "every error has a line, or a byte offset"


@pytest.mark.parametrize("case", [c for c in CASES if c.suffix != ".lark"][:4], ids=lambda p: p.name)
def test_cli_exits_2_with_one_message_and_no_traceback(case):
    proc = cli("circuit", "info", str(case.relative_to(ROOT)))
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1
    assert f"{case.name}:" in proc.stderr


def test_spec_override_errors_name_the_flag():
    proc = cli("spec", "check", "specs/cvp.lark", "--override", "no_such_key=1")
    assert proc.returncode == 2 and "--override no_such_key=1" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("spec", "check", "specs/cvp.lark", "--override", "ebits=99")
    assert proc.returncode == 2 and "out of range" in proc.stderr


def test_bad_flags_exit_2():
    assert cli("circuit", "eval", "circuits/c17.bench", "--inputs", "10").returncode == 2
    assert cli("circuit", "eval", "circuits/c17.bench", "--inputs", "1x101").returncode == 2
    assert cli("no-such-command").returncode == 2
    assert cli("circuit", "info", "does/not/exist.bench").returncode == 2
