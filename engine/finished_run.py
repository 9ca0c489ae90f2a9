"""A finished run's folder (it holds results.json) is changed only on request: ``train.py --overwrite``.

Without it, a second train.py call into that folder (another --root, a typo, a re-evaluation) is refused
before anything there is written, so the recorded config.yaml, results.json and log.txt stay those of the run.
"""
import os

RESULTS_FILE = "results.json"


class FinishedRunError(ValueError):
    """OUTPUT_DIR holds a finished run and the command did not ask to rewrite it."""


def check_finished_run(output_dir, overwrite, eval_only=False):
    """Raise FinishedRunError when ``output_dir`` holds results.json and ``overwrite`` is not given."""
    if overwrite or not output_dir or not os.path.isfile(os.path.join(output_dir, RESULTS_FILE)):
        return
    again = ("pass another --output-dir (a new folder)" if eval_only else
             f"evaluate it with --eval-only --model-dir {output_dir} --output-dir NEW_FOLDER")
    raise FinishedRunError(
        f"The output folder {output_dir} holds a finished run ({RESULTS_FILE}); another command never rewrites "
        f"it. To evaluate it again (other data, another --root), {again}; to re-evaluate it in place and "
        f"replace its config.yaml and {RESULTS_FILE}, add --overwrite.")
