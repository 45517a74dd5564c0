"""What every command shares on the way out: the exit-code table, printing a result, and turning every way a
command can end into that table.

Command modules import from here, never from ``bridge.commands.main``, so the command line is a root that nothing
imports.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Callable

from grammar.errors import InputError

# The one exit-code table every command follows (README, "Exit status").
EXIT_OK = 0  # success: proved, sound, equivalent
EXIT_FAILED = 1  # the checked thing is wrong: refuted, unsound, not equivalent
EXIT_BAD_INPUT = 2  # bad input, or a request refused (over a limit, or one that would overwrite a result)
EXIT_UNKNOWN = 3  # a solver timeout, or two checkers that disagree
EXIT_INTERNAL = 70  # a bug in cotproof (sysexits' EX_SOFTWARE): the traceback is printed, to be reported
EXIT_INTERRUPTED = 130


class Undecided(Exception):
    """A question the tools could not settle in time (a solver timeout): exit status 3, never a guess."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """``--help`` shows every default, flags without help text included."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "%(default)" not in text \
                and action.option_strings:
            text += " (default: %(default)s)"
        return text

    def _format_action(self, action):
        if not action.help and action.option_strings and action.default not in (None, False, argparse.SUPPRESS):
            action.help = "(default: %(default)s)"  # argparse prints no help line at all for an empty help string
        return super()._format_action(action)


class ArgParser(argparse.ArgumentParser):
    """argparse already exits 2 on bad flags; this keeps its message to one clear line plus usage, shows defaults,
    and gives every command ``--no-limit`` (see ``grammar.limits``)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):  # noqa: D401
        self.print_usage(sys.stderr)
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")

    def set_defaults(self, **kwargs):
        if "func" in kwargs and "no_limit" not in {a.dest for a in self._actions}:  # a command, not a group
            self.add_argument("--no-limit", action="store_true",
                              help="lift the size, memory and work limits checked before any work starts")
        super().set_defaults(**kwargs)


def emit(payload: dict, as_json: bool, human: Callable[[dict], str]) -> None:
    print(json.dumps(payload) if as_json else human(payload))


def run_command(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command and map how it ended onto the exit-code table: bad input of any kind is one message on stderr
    and status 2, never a traceback; with ``--json``, stdout still gets one JSON object saying what happened."""
    if getattr(args, "no_limit", False):
        from grammar import limits

        limits.lift()
    as_json = getattr(args, "json", False)
    try:
        status = int(func(args) or EXIT_OK)
        sys.stdout.flush()  # here, not at exit, so a closed pipe is caught below
        return status
    except InputError as err:
        print(str(err), file=sys.stderr)
        _json_error(as_json, "bad_input", err.message, str(err.loc) if err.loc else None)
        return EXIT_BAD_INPUT
    except Undecided as err:
        print(f"unknown: {err}", file=sys.stderr)
        _json_error(as_json, "unknown", str(err))
        return EXIT_UNKNOWN
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `cotproof ... | head`: the reader has what it wanted
        _silence_stdout()
        return EXIT_OK
    except MemoryError:
        print("error: out of memory: this request needs more memory than the process may use (the limit checks "
              "estimated less); try a smaller request", file=sys.stderr)
        _json_error(as_json, "bad_input", "out of memory")
        return EXIT_BAD_INPUT
    except Exception:  # noqa: BLE001 - anything else is a bug: say so, with what is needed to report it
        traceback.print_exc()
        print("internal error: this is a bug in cotproof, not a problem with your input; please report it with "
              "the traceback above", file=sys.stderr)
        _json_error(as_json, "internal_error", "see the traceback on stderr")
        return EXIT_INTERNAL


def _json_error(as_json: bool, status: str, message: str, where: str | None = None) -> None:
    if not as_json:
        return
    try:
        print(json.dumps({"status": status, "error": message, "where": where}))
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Python flushes stdout again at exit; point it at /dev/null so a closed pipe raises nothing more."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass
