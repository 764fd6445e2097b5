"""The sweep's live status line on stderr: a bar of finished tasks, how many failed and are
running, and the time left at the rate so far. On a terminal it redraws one line; into a file
or a pipe it writes one line per finished task."""

import sys
import time

__all__ = ["Progress"]


def _clock(seconds):
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else \
        f"{rest // 60}:{rest % 60:02d}"


class Progress:
    """``on_progress(done, failed, running, queued)`` for :func:`~accelgen.explore.sweep.run_sweep`.

    Members
    -------
    total : int
        Tasks of the sweep.
    stream : file
        Default ``sys.stderr``.
    """

    def __init__(self, total, stream=None, width=30):
        self.total, self.stream, self.width = total, stream or sys.stderr, width
        self.start = time.monotonic()
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = None

    def line(self, done, failed, running, queued=0):
        """The status text: ``[#######-------]  7/20 tasks: 6 done, 1 failed, 2 running, 11
        queued, 0:31 elapsed, ETA 1:04``."""
        finished = done + failed
        filled = self.width * finished // self.total if self.total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        elapsed = time.monotonic() - self.start
        eta = (_clock(elapsed / finished * (self.total - finished)) if finished else "?")
        return (f"[{bar}] {finished:>{len(str(self.total))}}/{self.total} tasks: {done} done, "
                f"{failed} failed, {running} running, {queued} queued, {_clock(elapsed)} "
                f"elapsed, ETA {eta}")

    def __call__(self, done, failed, running, queued=0):
        text = self.line(done, failed, running, queued)
        if text == self._last:
            return
        self._last = text
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            if done + failed >= self.total:
                self.stream.write("\n")
        else:
            self.stream.write(f"[accelgen] {text}\n")
        self.stream.flush()
