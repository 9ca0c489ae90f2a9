"""The run layer: where a run's folder is, what "done" means, and the sweep runner's parts.

Standard library only, so scripts/run_one.py (and any python3) can import it without torch.
layout.py is the one place for the run-folder layout and the "done" rule; the other modules are
the runner behind scripts/<method>.sh and scripts/sweep.sh, one job each.
"""
