"""Hypothesis fuzzing: corrupted specs and netlists either parse or raise InputError, never anything else."""
from helpers import ROOT, circuits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grammar.aiger import parse_aag, write_aag
from grammar.bench import parse_bench, write_bench
from grammar.errors import InputError
from grammar.spec import parse_spec

SPEC_TEXTS = [p.read_text() for p in sorted((ROOT / "specs").glob("*.lark")) if "from" not in p.read_text()]
ALPHABET = st.sampled_from(list("(){}=,#\n \t\"aANDOR01xyz9-._") + ["INPUT", "OUTPUT", "aag", "prove", "spec"])


@st.composite
def corrupted(draw, base_texts):
    text = draw(base_texts)
    for _ in range(draw(st.integers(1, 4))):
        if not text:
            break
        pos = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "delete", "replace", "duplicate_line"]))
        if kind == "insert":
            text = text[:pos] + draw(ALPHABET) + text[pos:]
        elif kind == "delete":
            text = text[:pos] + text[pos + draw(st.integers(1, 5)):]
        elif kind == "replace":
            text = text[:pos] + draw(ALPHABET) + text[pos + 1:]
        else:
            lines = text.splitlines(True)
            i = draw(st.integers(0, max(0, len(lines) - 1)))
            text = "".join(lines[:i + 1] + lines[i:i + 1] + lines[i + 1:])
    return text


def _parses_or_input_error(fn):
    try:
        fn()
    except InputError as err:
        assert err.loc is not None and "__ANON" not in str(err)


FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(corrupted(st.sampled_from(SPEC_TEXTS)))
def test_corrupted_specs(text):
    _parses_or_input_error(lambda: parse_spec("fuzz.lark", text=text))


@FUZZ
@given(corrupted(circuits().map(write_bench)))
def test_corrupted_bench(text):
    _parses_or_input_error(lambda: parse_bench(text, "fuzz.bench"))


@FUZZ
@given(corrupted(circuits().map(write_aag)))
def test_corrupted_aag(text):
    _parses_or_input_error(lambda: parse_aag(text, "fuzz.aag"))


@FUZZ
@given(st.text(max_size=200))
def test_arbitrary_text(text):
    for fn in (lambda: parse_spec("f.lark", text=text), lambda: parse_bench(text, "f.bench"),
               lambda: parse_aag(text, "f.aag")):
        _parses_or_input_error(fn)


def _lark_lexed(text: str):
    """The statements from bench_fast.lark's own Lark lexer: the reference the Python scanner must equal."""
    from lark.exceptions import UnexpectedInput

    from grammar.bench import STATEMENT_TOKENS, _bench_parser, statement

    try:
        return [statement(tok.type, tok, tok.line, tok.column) for tok in _bench_parser(True).lex(text)
                if tok.type in STATEMENT_TOKENS]
    except UnexpectedInput:
        return None


@FUZZ
@given(corrupted(circuits().map(write_bench)))
def test_the_bench_scanner_accepts_what_the_lark_lexer_accepts_with_the_same_locations(text):
    from grammar.bench import _fast_statements, _Unlexable

    text = text if text.endswith("\n") else text + "\n"
    try:
        ours = _fast_statements(text)
    except _Unlexable:
        ours = None
    assert ours == _lark_lexed(text)
