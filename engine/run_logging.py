"""Tee stdout into OUTPUT_DIR/log.txt without ever losing an earlier log.

Dassl starts a time-stamped file when log.txt exists. Here an existing log.txt is kept and the new run is
appended to it after a separator line, so that the log.txt of a resumed (or re-run) run holds its whole
history and always ends with the final result lines that CoOp's parser reads (it takes the last match).
"""
import os
import sys
import time


class Tee:
    """A stream that writes to the console and to a file."""

    def __init__(self, stream, fpath):
        self.console = stream
        self.file = open(fpath, "a", encoding="utf-8")

    def write(self, msg):
        self.console.write(msg)
        if not self.file.closed:
            self.file.write(msg)

    def flush(self):
        self.console.flush()
        if not self.file.closed:
            self.file.flush()
            os.fsync(self.file.fileno())

    def isatty(self):
        return False

    def fileno(self):
        return self.console.fileno()

    def close(self):
        if not self.file.closed:
            self.file.close()


def setup_run_logger(output_dir, filename="log.txt"):
    """Start teeing stdout to ``output_dir/filename``; return the log path."""
    os.makedirs(output_dir, exist_ok=True)
    fpath = os.path.join(output_dir, filename)
    earlier = os.path.exists(fpath) and os.path.getsize(fpath) > 0
    if isinstance(sys.stdout, Tee):
        sys.stdout.close()
        sys.stdout = sys.stdout.console
    sys.stdout = Tee(sys.stdout, fpath)
    if earlier:
        print(f"\n===== new run started {time.strftime('%Y-%m-%d %H:%M:%S')} "
              f"(the earlier log above is kept) =====")
    return fpath


def stop_run_logger():
    if isinstance(sys.stdout, Tee):
        tee = sys.stdout
        sys.stdout = tee.console
        tee.close()


def append_to_log(output_dir, text, filename="log.txt"):
    """Append ``text`` to the run's log file directly (used for errors printed to stderr)."""
    try:
        with open(os.path.join(output_dir, filename), "a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError:
        pass
