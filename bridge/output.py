"""What every command shares on the way out: exit codes, printing a result, and turning bad input into exit 2.

Command modules import from here, never from ``bridge.cli``, so the command line is a root that nothing imports.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Callable

from grammar.errors import InputError

EXIT_OK = 0  # proved, sound, equivalent
EXIT_FAILED = 1  # refuted, unsound, not equivalent
EXIT_BAD_INPUT = 2
EXIT_UNKNOWN = 3  # a solver timeout, or two checkers that disagree
EXIT_INTERRUPTED = 130


class Undecided(Exception):
    """A question the tools could not settle in time (a solver timeout): exit status 3, never a guess."""


class ArgParser(argparse.ArgumentParser):
    """argparse already exits 2 on bad flags; this keeps its message to one clear line plus usage."""

    def error(self, message: str):  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def emit(payload: dict, as_json: bool, human: Callable[[dict], str]) -> None:
    print(json.dumps(payload) if as_json else human(payload))


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command; bad input of any kind becomes one message on stderr and exit status 2, never a traceback."""
    try:
        return int(func(args) or EXIT_OK)
    except InputError as err:
        print(str(err), file=sys.stderr)
        return EXIT_BAD_INPUT
    except Undecided as err:
        print(f"unknown: {err}", file=sys.stderr)
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
