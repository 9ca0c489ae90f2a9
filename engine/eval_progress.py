"""Progress lines during an evaluation pass, so that a long test set is not minutes of silence.

A line at most every ``$VR_PROGRESS_SECONDS`` seconds (default 10; 0: after every batch), and none for a
pass that ends sooner.
"""
import os
import time

PROGRESS_ENV = "VR_PROGRESS_SECONDS"
DEFAULT_SECONDS = 10.0


def interval_seconds(environ=None):
    raw = (os.environ if environ is None else environ).get(PROGRESS_ENV, "").strip()
    try:
        return max(0.0, float(raw)) if raw else DEFAULT_SECONDS
    except ValueError:
        return DEFAULT_SECONDS


class EvalProgress:
    """``step(batch_index, images_so_far)`` after each batch prints 'Evaluating *test*: batch i/N, ...'."""

    def __init__(self, split, num_batches, interval=None):
        self.split = split
        self.num_batches = num_batches
        self.interval = interval_seconds() if interval is None else interval
        self.start = self.last = time.time()

    def step(self, batch, images):
        now = time.time()
        if now - self.last < self.interval or batch >= self.num_batches and self.interval > 0:
            return
        self.last = now
        elapsed = now - self.start
        left = elapsed / batch * (self.num_batches - batch)
        print(f"Evaluating *{self.split}*: batch {batch}/{self.num_batches} ({images:,} images, "
              f"{elapsed:.0f} s, about {left:.0f} s left)", flush=True)
