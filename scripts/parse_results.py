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
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from results.coop_logs import TEST_START, TRAIN_END, NothingFound, run  # noqa: E402

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
