"""A small progress reporter for scans (stderr; one rewritten line on a TTY, sparse lines in logs).

Rate and ETA. With ``n`` rows computed in this session, the rate is ``n / elapsed`` until the
second chunk finishes; from then on it is measured from the end of the first chunk, which
excludes the one-off compilation, so the ETA = remaining / rate is not skewed by it. Resumed
rows count as done but never towards the rate.

Why not tqdm or rich (measured, tests/test_libraries.py keeps the ETA claim): on a simulated
scan whose first chunk carries a 3 s compilation followed by 40 chunks of 0.1 s, this ETA is
within 1% of the true remaining time from the second chunk on; tqdm's (default smoothing 0.3,
``initial=`` for the resumed rows) is off by up to 12x and by more than 20% on 10 of 38 chunks,
and with smoothing=0 on all 38. Written to a log file (SLURM), tqdm redraws with carriage
returns inside one line (10 updates: 1 newline, 12 CRs) or, with ``disable=None``, prints
nothing; here a log gets a plain line at most every ``min_interval`` seconds. tqdm would also
be a new runtime dependency for ~100 lines, and rich a larger one (pygments, markdown-it-py).
"""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """Reports hypotheses done / total, rate (hypotheses/s), elapsed time and ETA.

    Args:
        enabled: ``False`` prints nothing (``run_scan(progress=False)``).
        stream: where to write (default ``sys.stderr``, looked up when used).
        min_interval: seconds between lines when ``stream`` is not a TTY (logs, SLURM output):
            the first and the last update always print, others at most once per interval. On a
            TTY the line is rewritten in place at most 10 times a second.
        label: prefix of each line.

    The driver calls :meth:`start`, then :meth:`update` after every chunk, then :meth:`finish`.
    Subclass and override :meth:`update` to hook into the chunk loop (tests do).

    Example output (not a TTY)::

        scan: resumed 300 done, 200 to go (chunks of 64 on 4 devices)
        scan: 364/500 (72.8%) | resumed 300 | 31.9 hyp/s | elapsed 0:00:02 | ETA 0:00:04
    """

    def __init__(self, *, enabled=True, stream=None, min_interval: float = 10.0, label="scan"):
        self.enabled = enabled
        self.stream = stream
        self.min_interval = min_interval
        self.label = label
        self.start(0)

    def start(self, total: int, resumed: int = 0, info: str = ""):
        """Begin a scan of ``total`` rows of which ``resumed`` were done by an earlier run."""
        self.total, self.resumed, self.computed = int(total), int(resumed), 0
        self.t0 = time.monotonic()
        self._first = None  # (time, computed) at the first update
        self._last_print = None
        if total:
            todo = self.total - self.resumed
            head = f"resumed {self.resumed} done, {todo} to go" if resumed else f"{todo} to go"
            self._emit(f"{self.label}: {head}" + (f" ({info})" if info else ""), newline=True)

    @property
    def done(self) -> int:
        """Rows done, resumed ones included."""
        return self.resumed + self.computed

    def rate(self) -> float | None:
        """Hypotheses per second computed in this session (None before any)."""
        now = time.monotonic()
        if self._first is not None and self.computed > self._first[1] and now > self._first[0]:
            return (self.computed - self._first[1]) / (now - self._first[0])
        return self.computed / (now - self.t0) if self.computed and now > self.t0 else None

    def line(self) -> str:
        """The current status line."""
        rate, elapsed = self.rate(), time.monotonic() - self.t0
        pct = 100.0 * self.done / self.total if self.total else 100.0
        parts = [f"{self.label}: {self.done}/{self.total} ({pct:.1f}%)"]
        if self.resumed:
            parts.append(f"resumed {self.resumed}")
        parts.append(f"{rate:.3g} hyp/s" if rate else "? hyp/s")
        parts.append(f"elapsed {_clock(elapsed)}")
        left = self.total - self.done
        parts.append(
            f"ETA {_clock(left / rate)}" if rate else ("ETA 0:00:00" if not left else "ETA ?")
        )
        return " | ".join(parts)

    def update(self, n: int):
        """Record ``n`` more rows computed (called after each chunk is stored)."""
        self.computed += int(n)
        now = time.monotonic()
        first = self._first is None
        if first:
            self._first = (now, self.computed)
        tty = self._isatty()
        interval = 0.1 if tty else self.min_interval
        if first or self._last_print is None or now - self._last_print >= interval:
            self._emit(self.line(), newline=not tty)

    def finish(self):
        """Print the final status line."""
        if self.total and self._first is not None:
            self._emit(self.line(), newline=True)

    def _isatty(self) -> bool:
        stream = self.stream or sys.stderr
        return bool(getattr(stream, "isatty", lambda: False)())

    def _emit(self, text: str, newline: bool):
        if not self.enabled:
            return
        stream = self.stream or sys.stderr
        if self._isatty():
            stream.write("\r\x1b[2K" + text + ("\n" if newline else ""))
        else:
            stream.write(text + "\n")
        stream.flush()
        self._last_print = time.monotonic()
