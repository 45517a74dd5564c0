"""What the command shells share about flags: value types, so argparse itself rejects a bad number with one message
naming the flag (exit 2) before any work starts (counts whole and in range, durations and rates finite and
positive); one parser per command (``command``); renamed flags that still work and warn (``renamed``); and the
netlist flags with the report ``--optimize`` prints."""
from __future__ import annotations

import argparse
import math

LARGEST = 2 ** 63 - 1  # what a count or seed may be: numpy, torch and the limit arithmetic all hold it


def _integer(text: str) -> int:
    try:
        value = int(text, 10)
    except ValueError:
        shown = text if len(text) <= 40 else text[:40] + "..."
        raise argparse.ArgumentTypeError(f"{shown!r} is not a whole number") from None
    if abs(value) > LARGEST:
        raise argparse.ArgumentTypeError(f"a {len(text)}-digit number is too large (at most {LARGEST:,})")
    return value


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def _at_least(parse, lowest, inclusive: bool, words: str):
    """A flag type: ``parse`` the text, then require it to be ``>= lowest`` (or ``> lowest``)."""
    def check(text: str):
        value = parse(text)
        if value < lowest or (not inclusive and value == lowest):
            raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must be {words}")
        return value
    return check


positive_int = _at_least(_integer, 1, True, "at least 1")
count = _at_least(_integer, 0, True, "0 or more")  # a whole number, 0 allowed
seed = _at_least(_integer, 0, True, "0 or more")
# a duration: finite and positive (a timeout of 0 or -1 would make every answer UNKNOWN)
seconds = _at_least(_number, 0, False, "more than 0 seconds")
positive_float = _at_least(_number, 0, False, "more than 0")
nonnegative_float = _at_least(_number, 0, True, "0 or more")


def open_fraction(text: str) -> float:
    """A number strictly between 0 and 1 (a confidence level)."""
    value = _number(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must lie strictly between 0 and 1")
    return value


def shard(text: str) -> tuple[int, int]:
    """``i/k``: piece i (counted from 0) of k."""
    parts = text.split("/")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not i/k (shard i of k, counted from 0)")
    i, k = int(parts[0]), int(parts[1])
    if not (k >= 1 and 0 <= i < k):
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= i < k")
    return i, k


def command(sub, name: str, func, json_help: str = "print one JSON object instead of text", **kwargs):
    """A subcommand's parser: ``sub.add_parser(name, **kwargs)`` with the ``--json`` every command takes and
    ``func`` to run it; the caller adds the command's own arguments."""
    p = sub.add_parser(name, **kwargs)
    p.add_argument("--json", action="store_true", help=json_help)
    p.set_defaults(func=func)
    return p


class _Renamed(argparse.Action):
    """An old spelling of a renamed flag: it still works, and says once on stderr what to write instead."""

    def __init__(self, option_strings, dest, new: str = "", **kwargs):
        self.new = new
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        import sys

        print(f"cotproof: {option_string} is deprecated here and will be removed: write {self.new}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def renamed(p, old: str, new: str, **kwargs) -> None:
    """Register ``old`` as a deprecated alias of the flag ``new`` (already added, same ``dest``)."""
    p.add_argument(old, action=_Renamed, new=new, help=argparse.SUPPRESS, **kwargs)


def optimize_lines(report: dict | None) -> list[str]:
    """The --optimize report for people: one line, or none without --optimize."""
    if not report:
        return []
    return [f"optimised: {report['gates_before']} -> {report['gates_after']} gates, CoT {report['cot_steps_before']} "
            f"-> {report['cot_steps_after']} steps, proved equivalent ({report['method']})"]


def add_netlist_flags(p, optimize: bool = False) -> None:
    """The flags that feed ``load_target``: --format for every command that reads a netlist; --optimize where a
    circuit is compiled."""
    p.add_argument("--format", metavar="FMT", help="netlist format when the extension does not say: "
                   "bench, aag, aig, blif or v")
    if optimize:
        p.add_argument("--optimize", action="store_true",
                       help="shrink the circuit (aigverse) and prove it equivalent before using it")
