"""``python -m bridge.verify SPEC``: prove the construction's weights exact, or print a replayed counterexample.

Exit status: 0 proved, 1 refuted, 2 bad input, 3 unknown.
"""
from __future__ import annotations

import argparse
import sys

EXIT_PROVED, EXIT_REFUTED, EXIT_BAD_INPUT, EXIT_UNKNOWN = 0, 1, 2, 3


def add_verify_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="a spec (.lark) or a netlist (.bench/.aag)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per lemma; a timeout is UNKNOWN")
    p.add_argument("--emit-smt2", metavar="DIR")
    p.add_argument("--override", action="append", metavar="KEY=VALUE")


def run_verify(args) -> int:
    from bridge.inputs import parse_overrides
    from grammar.spec import parse_spec

    parse_spec(args.spec, parse_overrides(args.override))
    print("verify: proving is not supported yet (issue 'formal proofs'); the spec parsed fine", file=sys.stderr)
    return EXIT_UNKNOWN


def main(argv: list[str] | None = None) -> int:
    from bridge.cli import _Parser, EXIT_BAD_INPUT as BAD
    from grammar.errors import InputError

    parser = _Parser(prog="python -m bridge.verify", description=__doc__.splitlines()[0])
    add_verify_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_verify(args)
    except InputError as err:
        print(str(err), file=sys.stderr)
        return BAD


if __name__ == "__main__":
    sys.exit(main())
