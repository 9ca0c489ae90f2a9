#!/usr/bin/env bash
# One run over the tasks of one SLURM allocation (any number of nodes): each task srun starts becomes
# one rank of engine/distributed.py (gloo on CPU, nccl on GPUs), as torchrun would have started it.
# usage (inside sbatch/salloc):  srun bash scripts/srun_train.sh train.py --root ... [KEY VALUE ...]
# The global batch DATALOADER.TRAIN_X.BATCH_SIZE is split over the $SLURM_NTASKS ranks (docs/sweeps.md).
set -eu
: "${SLURM_PROCID:?run me under srun (SLURM_PROCID is not set)}"
export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID
export MASTER_ADDR=${MASTER_ADDR:-$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)}
export MASTER_PORT=${MASTER_PORT:-$((20000 + ${SLURM_JOB_ID:-0} % 20000))}
exec ${PYTHON:-python} "$@"
