"""Tee stdout into OUTPUT_DIR/log.txt without ever losing an earlier log, or a line of this one.

Dassl starts a time-stamped file when log.txt exists. Here an existing log.txt is kept and the new run is
appended to it after a separator line, so that the log.txt of a resumed (or re-run) run holds its whole
history and always ends with the final result lines that CoOp's parser reads (it takes the last match).
Every complete line reaches the file at once (a run killed by SIGTERM or SIGKILL keeps what it printed), and
the error that ends a run is written into it too (:func:`final_error_log`).
"""
import contextlib
import os
import sys
import time

_LAST_LOG = {"path": None}  # the log file setup_run_logger opened last in this process


class Tee:
    """A stream that writes to the console and to a file, flushing the file at every line end."""

    def __init__(self, stream, fpath):
        self.console = stream
        self.path = fpath
        self.file = open(fpath, "a", encoding="utf-8")  # noqa: SIM115  (open for the whole run; close() closes it)

    def write(self, msg):
        self.console.write(msg)
        if not self.file.closed:
            with self._naming_the_log():
                self.file.write(msg)
                if "\n" in msg:
                    self.file.flush()  # to the OS: survives the process being killed
        return len(msg)

    def flush(self):
        self.console.flush()
        if not self.file.closed:
            with self._naming_the_log():
                self.file.flush()
                os.fsync(self.file.fileno())

    @contextlib.contextmanager
    def _naming_the_log(self):
        """A full disk: the OS names no file, so the error names the log."""
        try:
            yield
        except OSError as err:
            raise type(err)(err.errno, err.strerror, self.path) from err

    def isatty(self):
        return False

    def fileno(self):
        return self.console.fileno()

    def close(self):
        if not self.file.closed:
            with contextlib.suppress(OSError):  # a full disk was already reported by write()
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
    _LAST_LOG["path"] = fpath
    if earlier:
        print(f"\n===== new run started {time.strftime('%Y-%m-%d %H:%M:%S')} "
              f"(the earlier log above is kept) =====")
    return fpath


def stop_run_logger():
    if isinstance(sys.stdout, Tee):
        tee = sys.stdout
        sys.stdout = tee.console
        tee.close()


def append_to_file(path, text):
    """Append ``text`` (one line or more) to the file ``path``; never raises."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(text if text.endswith("\n") else text + "\n")
    except OSError:  # the log itself cannot be written (full or read-only disk): the console has the error
        pass


@contextlib.contextmanager
def final_error_log(output_dir=""):
    """Yield ``record(text)``, which appends the error that ended a command to its run's log: the log that
    :func:`setup_run_logger` opened inside this block, else ``output_dir/log.txt`` when that folder exists
    (an error before the log started, e.g. a bad flag for an existing run folder)."""
    _LAST_LOG["path"] = None

    def record(text):
        path = _LAST_LOG["path"]
        finished = output_dir and os.path.isfile(os.path.join(output_dir, "results.json"))
        if path is None and output_dir and os.path.isdir(output_dir) and not finished:
            # (a finished run's log keeps ending with its result lines: a command refused before it
            # started, e.g. another config for that folder, says so on the console only)
            path = os.path.join(output_dir, "log.txt")
        if path is not None:
            append_to_file(path, text)

    try:
        yield record
    finally:
        _LAST_LOG["path"] = None
