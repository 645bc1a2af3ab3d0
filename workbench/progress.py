"""A spinner with elapsed time for steps that show no progress of their own (gate training, generation).

On a terminal it redraws one line on stderr every 0.25 s (``| training the power gate  7 s``); elsewhere
(logs, notebooks, pipes) it prints the step once when it starts and once with its time when it ends.

Example:
    >>> with spinner("training the power gate"):
    ...     gate = train_gate(model, "power")
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import TextIO

__all__ = ["spinner"]

_FRAMES = "|/-\\"


@contextlib.contextmanager
def spinner(desc: str, stream: TextIO | None = None, enabled: bool = True, interval: float = 0.25) -> Iterator[None]:
    """Show ``desc`` with the seconds spent in the block; ends with ``desc ... done in N s`` (or ``failed``)."""
    out = sys.stderr if stream is None else stream
    if not enabled:
        yield
        return
    start = time.monotonic()
    live = bool(getattr(out, "isatty", lambda: False)())
    stop = threading.Event()

    def draw() -> None:
        k = 0
        while not stop.wait(interval):
            k += 1
            out.write(f"\r{_FRAMES[k % len(_FRAMES)]} {desc}  {time.monotonic() - start:.0f} s")
            out.flush()

    thread = threading.Thread(target=draw, daemon=True) if live else None
    if thread is not None:
        thread.start()
    else:
        print(f"{desc} ...", file=out, flush=True)
    outcome = "failed after"
    try:
        yield
        outcome = "done in"
    finally:
        stop.set()
        if thread is not None:
            thread.join()
        print(f"{chr(13) if live else ''}{desc} ... {outcome} {time.monotonic() - start:.1f} s", file=out, flush=True)
