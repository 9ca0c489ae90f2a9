"""CoOp's parse_test_res.py over Dassl log.txt files: the value of a metric in each seed folder's log, and
their mean and population std (scripts/parse_results.py is its command line, with the matching rules).

In each DIR/<subfolder>/log.txt matching starts after the line TRAIN_END (TEST_START for eval-only logs);
the last '* <keyword>: X%' line after it is the folder's value.
"""
import math
import os
import os.path as osp
import re
import sys

from .cells import mean_std

TRAIN_END = "Finish training"
TEST_START = "=> result"


class NothingFound(RuntimeError):
    """No log under a directory had a matching result line."""


def list_visible(directory):
    """Sorted non-hidden entry names of a directory (as Dassl's listdir_nohidden(sort=True))."""
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def mean(values):
    return mean_std(values)[0]


def pstd(values):
    """Population std, the same number numpy.std (CoOp's choice) gives."""
    return mean_std(values)[1]


def ci95(values):
    return 1.96 * pstd(values) / math.sqrt(len(values))


def metric_regex(keyword):
    return re.compile(r"\* " + re.escape(keyword) + r": ([\.\deE+-]+)%")


def parse_log(fpath, regex, end_signal):
    """Last value matched after the end-signal line, or None; also whether '=> result' was seen."""
    started = False
    value = None
    saw_result = False
    with open(fpath, errors="replace") as f:
        for line in f:
            line = line.strip()
            if line == TEST_START:
                saw_result = True
            if line == end_signal:
                started = True
            if started:
                match = regex.search(line)
                if match:
                    value = float(match.group(1))
    return value, saw_result


def parse_directory(directory, keyword="accuracy", test_log=False, use_ci95=False,
                    out=None, err=None):
    """Print per-seed values and the summary of one experiment folder; return the mean."""
    out = out or sys.stdout
    err = err or sys.stderr
    end_signal = TEST_START if test_log else TRAIN_END
    regex = metric_regex(keyword)
    print(f"Parsing files in {directory}", file=out)
    found = []  # (log path, value)
    saw_result = False
    for name in list_visible(directory):
        sub = osp.join(directory, name)
        if not osp.isdir(sub):
            continue
        fpath = osp.join(sub, "log.txt")
        if not osp.isfile(fpath):
            print(f"warning: no log.txt in {sub}; skipped", file=err)
            continue
        value, seen = parse_log(fpath, regex, end_signal)
        saw_result = saw_result or seen
        if value is not None:
            found.append((fpath, value))

    if not found:
        msg = f"Nothing found in {directory} (no '* {keyword}: X%' line after '{end_signal}')"
        if not test_log and saw_result:
            msg += (f". The logs contain '{TEST_START}' but no '{TRAIN_END}' line: they look like "
                    "eval-only (zero-shot) logs; rerun with --test-log")
        raise NothingFound(msg)

    for fpath, value in found:
        print(f"file: {fpath}. {keyword}: {value:.2f}%. ", file=out)
    values = [v for _, v in found]
    avg = mean(values)
    spread = ci95(values) if use_ci95 else pstd(values)
    print("===", file=out)
    print(f"Summary of directory: {directory}", file=out)
    print(f"* {keyword}: {avg:.2f}% +- {spread:.2f}%", file=out)
    print("===", file=out)
    return avg


def run(args, out=None, err=None):
    out = out or sys.stdout
    if not osp.isdir(args.directory):
        raise FileNotFoundError(f"{args.directory} is not a directory; pass the folder that holds "
                                "the seed folders (e.g. output/caltech101/AR/vit_b16_16shots)")
    kwargs = dict(keyword=args.keyword, test_log=args.test_log, use_ci95=args.ci95,
                  out=out, err=err)
    if not args.multi_exp:
        parse_directory(args.directory, **kwargs)
        return
    means = []
    for name in list_visible(args.directory):
        sub = osp.join(args.directory, name)
        if osp.isdir(sub):
            means.append(parse_directory(sub, **kwargs))
    if not means:
        raise NothingFound(f"Nothing found in {args.directory}: --multi-exp expects experiment "
                           "folders that hold seed folders")
    print("Average performance", file=out)
    print(f"* {args.keyword}: {mean(means):.2f}%", file=out)
