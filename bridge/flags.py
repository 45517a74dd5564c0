"""Value types for flags, so argparse itself rejects a bad number with one message naming the flag (exit 2)
before any work starts: counts are whole and in range, durations and rates finite and positive."""
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


def positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be at least 1")
    return value


def count(text: str) -> int:
    """A whole number, 0 allowed."""
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: it must be 0 or more")
    return value


def seed(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: a seed is 0 or more")
    return value


def seconds(text: str) -> float:
    """A duration: finite and positive (a timeout of 0 or -1 would make every answer UNKNOWN)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must be more than 0 seconds")
    return value


def positive_float(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must be more than 0")
    return value


def nonnegative_float(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value:g} is not allowed: it must be 0 or more")
    return value
