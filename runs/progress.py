"""Numbered progress lines of a batch of runs and their summary."""
import sys
import threading

from .jobs import label, run_dir

WORDS = {"skipped": "skip", "done": "done", "failed": "FAILED", "busy": "skip (busy)",
         "interrupted": "interrupted"}


class Progress:
    """Numbered progress lines and the done/failed/skipped tally."""

    def __init__(self, jobs, settings, show_cfg=False, out=None):
        self.total = len(jobs)
        self.index = {job: i + 1 for i, job in enumerate(jobs)}
        self.settings = settings
        self.show_cfg = show_cfg
        self.out = out
        self.outcomes = {}
        self.lock = threading.Lock()

    def say(self, job, text):
        with self.lock:
            print(f"[{self.index[job]}/{self.total}] {label(job, self.show_cfg)} ... {text}",
                  file=self.out or sys.stdout, flush=True)

    def record(self, job, outcome):
        self.outcomes[job] = outcome
        self.say(job, f"{WORDS[outcome.status]} ({outcome.detail})")

    def summary(self):
        counts = dict.fromkeys(WORDS, 0)
        for outcome in self.outcomes.values():
            counts[outcome.status] += 1
        not_run = self.total - len(self.outcomes) + counts["interrupted"]
        lines = [f"summary: {self.total} runs: done {counts['done']} / failed {counts['failed']}"
                 f" / skipped {counts['skipped']}"]
        if counts["busy"]:
            lines.append(f"  running in another process (not touched): {counts['busy']}")
        if not_run:
            lines.append(f"  not finished (interrupted): {not_run}")
        failed = [(job, o) for job, o in self.outcomes.items() if o.status == "failed"]
        if failed:
            lines.append("failed run folders:")
            lines += [f"  {run_dir(job, self.settings)}  ({o.detail})" for job, o in failed]
        return "\n".join(lines)

    def ok(self):
        return (len(self.outcomes) == self.total
                and all(o.status not in ("failed", "interrupted") for o in self.outcomes.values()))
