"""Mean and std of a metric over the seed folders of an experiment, read from Dassl log.txt files.

Drop-in for CoOp's ``parse_test_res.py``: same arguments, same matching rules, same printed lines
(so numbers can be compared with published CoOp-style tables). Layout read::

    DIR/seed1/log.txt, DIR/seed2/log.txt, ...           (default)
    DIR/exp-a/seed1/log.txt, DIR/exp-b/seed1/log.txt    (--multi-exp)

Differences from CoOp's script, all on paths where it would crash with an AssertionError: an entry
of DIR without a log.txt is reported on stderr and skipped, and "nothing found" is one error
message (with a hint when the logs are eval-only logs and --test-log was forgotten).
"""
import argparse
import math
import os
import os.path as osp
import re
import sys

TRAIN_END = "Finish training"
TEST_START = "=> result"

EPILOG = f"""\
matching rules (as CoOp's parse_test_res.py):
  In each DIR/<subfolder>/log.txt, matching starts after a line that is exactly
  '{TRAIN_END}' (with --test-log: exactly '{TEST_START}'); the LAST line containing
  '* <keyword>: X%' after that point gives the folder's value. Std is the population
  std (numpy.std, ddof=0); --ci95 prints 1.96 * std / sqrt(n) instead.

eval-only (zero-shot) logs:
  A run started with --eval-only (e.g. ZeroshotCLIP) never prints '{TRAIN_END}', so
  WITHOUT --test-log nothing is matched and the script stops with 'Nothing found'.
  Use --test-log for such logs (it starts matching at '{TEST_START}'). When nothing
  matched but the logs contain '{TEST_START}', the error message says so.

examples:
  python scripts/parse_results.py output/caltech101/AR/vit_b16_16shots
  python scripts/parse_results.py output/caltech101/ZeroshotCLIP/vit_b16_16shots --test-log
  python scripts/parse_results.py output/caltech101/AR --multi-exp --keyword macro_f1
"""


class NothingFound(RuntimeError):
    """No log under a directory had a matching result line."""


def list_visible(directory):
    """Sorted non-hidden entry names of a directory (as Dassl's listdir_nohidden(sort=True))."""
    return sorted(name for name in os.listdir(directory) if not name.startswith("."))


def mean(values):
    return sum(values) / len(values)


def pstd(values):
    """Population std, the same number numpy.std (CoOp's choice) gives."""
    mu = mean(values)
    return math.sqrt(sum((v - mu) ** 2 for v in values) / len(values))


def ci95(values):
    return 1.96 * pstd(values) / math.sqrt(len(values))


def metric_regex(keyword):
    return re.compile(r"\* " + re.escape(keyword) + r": ([\.\deE+-]+)%")


def parse_log(fpath, regex, end_signal):
    """Last value matched after the end-signal line, or None; also whether '=> result' was seen."""
    started = False
    value = None
    saw_result = False
    with open(fpath, "r", errors="replace") as f:
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


def build_parser():
    parser = argparse.ArgumentParser(
        description="Mean +- std of a metric over seed folders (CoOp's parse_test_res.py).",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("directory", help="folder holding the seed folders (each with log.txt)")
    parser.add_argument("--ci95", action="store_true",
                        help="print the 95%% confidence interval (1.96*std/sqrt(n)) instead of std")
    parser.add_argument("--test-log", action="store_true",
                        help=f"parse test-only logs: start matching at '{TEST_START}' instead of "
                             f"'{TRAIN_END}'; needed for eval-only (zero-shot) runs")
    parser.add_argument("--multi-exp", action="store_true",
                        help="DIR holds experiment folders, each holding seed folders")
    parser.add_argument("--keyword", default="accuracy",
                        help="metric to extract from '* KEYWORD: X%%' lines (default: accuracy; "
                             "e.g. macro_f1, error)")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (NothingFound, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
