"""Turn Lark's exceptions into one InputError with file:line:column and expectations in human words."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.visitors import Transformer_NonRecursive

from grammar.errors import InputError, SourceLoc


@lru_cache(maxsize=None)
def grammar_parser(filename: str, **options) -> Lark:
    """The LALR parser of ``grammar/<filename>``, built once per process (building one takes tens of ms)."""
    return Lark.open(str(Path(__file__).with_name(filename)), parser="lalr", maybe_placeholders=False, **options)


def parse_located(parser: Lark, text: str, path: str):
    """``parser.parse(text)``, with a parse failure turned into one InputError at file:line:column."""
    try:
        return parser.parse(text)
    except UnexpectedInput as err:
        raise from_lark(err, path, text) from None

# Terminal name -> how a person would say it. Terminals not listed fall back to their lowercase name.
HUMAN_TERMINALS = {
    "NAME": "a name", "NUMBER": "a number", "STRING": 'a quoted string like "file.bench"',
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "EQUAL": "'='", "COMMA": "','",
    "$END": "end of file", "NL": "end of line", "_NL": "end of line", "INT": "an integer",
    "SYMBOL": "a symbol line such as 'i0 name'", "COMMENT_SECTION": "a comment section 'c'",
    "CONST": "a constant such as 1'b0", "TILDE": "'~'", "AMP": "'&'", "BAR": "'|'", "CARET": "'^'", "SEMI": "';'",
    "CUBE": "a cover row such as '10 1'", "DIRECTIVE": "a directive such as .names",
}


def human_terminal(name: str) -> str:
    """A leading '_' only keeps a terminal out of the parse tree; it says nothing about how to name it."""
    if name != "_NL":
        name = name.lstrip("_")
    if name in HUMAN_TERMINALS:
        return HUMAN_TERMINALS[name]
    if name.startswith("KW_"):
        return f"'{name[3:].lower()}'"
    return name.lower()


def _expected_words(names) -> str:
    words = sorted({human_terminal(n) for n in names})
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def from_lark(err: UnexpectedInput, path: str, source: str) -> InputError:
    """Translate a Lark parse failure; the offending text is the token (or character) where parsing stopped."""
    line = getattr(err, "line", 0) or 0
    column = getattr(err, "column", 0) or 0
    if isinstance(err, UnexpectedEOF) or (isinstance(err, UnexpectedToken) and err.token.type == "$END"):
        lines = source.splitlines() or [""]
        line, column = len(lines), len(lines[-1]) + 1
        return InputError("unexpected end of file", SourceLoc(path, line, column),
                          expected=_expected_words(err.expected))
    if isinstance(err, UnexpectedToken):
        text = str(err.token)
        what = "unexpected end of line" if err.token.type in ("_NL", "NL") else f"unexpected {text!r}"
        return InputError(what, SourceLoc(path, line, column), text=text, expected=_expected_words(err.expected))
    if isinstance(err, UnexpectedCharacters):
        char = source[err.pos_in_stream] if 0 <= err.pos_in_stream < len(source) else ""
        return InputError(f"unexpected character {char!r}", SourceLoc(path, line, column), text=char,
                          expected=_expected_words(err.allowed or ()))
    return InputError(str(err), SourceLoc(path, line, column))


class SourceTransformer(Transformer_NonRecursive):
    """A Transformer that knows its file, so every callback can point at a token or a rule's start (``at``).
    Non-recursive, so a 100,000-term expression or deep nesting costs memory, never Python's recursion limit.
    ``run`` unwraps the VisitError lark puts around an InputError a callback raises, so the user sees their
    message and nothing else."""

    def __init__(self, path: str):
        super().__init__()
        self.path = path

    def at(self, node) -> SourceLoc:
        """A token or a rule's ``meta`` (``propagate_positions``) as a place in the file."""
        return SourceLoc(self.path, getattr(node, "line", 0) or 0, getattr(node, "column", 0) or 0)

    def run(self, tree):
        try:
            return self.transform(tree)
        except VisitError as err:
            if isinstance(err.orig_exc, InputError):
                raise err.orig_exc from None
            raise
