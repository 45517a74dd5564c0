"""Progress on stderr for work that lasts more than a few seconds: a tqdm bar on a terminal, and otherwise (a log,
a CI job, a pipe) one plain line every ``LINE_EVERY`` seconds with the count, the rate and an ETA. Work that
finishes within ``DELAY`` seconds prints nothing, so short commands stay quiet."""
from __future__ import annotations

import sys
import time

DELAY = 3.0  # seconds before anything is shown
LINE_EVERY = 10.0  # seconds between plain lines when stderr is not a terminal


class Progress:
    def __init__(self, total: int | None, unit: str, desc: str, clock=time.perf_counter, tty: bool | None = None):
        self.total, self.unit, self.desc, self.clock = total, unit, desc, clock
        self.n = 0
        self.start = self.last_line = clock()
        self.bar = None
        self.tty = sys.stderr.isatty() if tty is None else tty
        if self.tty:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit=unit, desc=desc, file=sys.stderr, delay=DELAY, leave=False)

    def update(self, n: int = 1) -> None:
        self.update_to(self.n + n)

    def update_to(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n - self.n)
            self.n = n
            return
        self.n = n
        now = self.clock()
        if now - self.start >= DELAY and now - self.last_line >= LINE_EVERY:
            self.last_line = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float) -> str:
        elapsed = now - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        units = self.unit[:-1] + "ies" if self.unit.endswith("y") else self.unit + "s"
        text = f"{self.desc}: {self.n:,}" + (f"/{self.total:,}" if self.total else "") + f" {units}"
        text += f", {rate:,.1f} {units}/s, {elapsed:,.0f} s so far"
        if self.total and rate > 0:
            text += f", about {(self.total - self.n) / rate:,.0f} s to go"
        return text

    def describe(self, desc: str) -> None:
        """A new label for what is being counted (verify's current lemma)."""
        self.desc = desc
        if self.bar is not None:
            self.bar.set_description(desc, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    @classmethod
    def over(cls, items, unit: str, desc: str):
        """``items``, one by one, with progress."""
        items = list(items)
        with cls(len(items), unit, desc) as progress:
            for item in items:
                yield item
                progress.update()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
