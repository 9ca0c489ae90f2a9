"""The config keys that never change what a run trains or measures (stdlib only).

One list for the two places that compare runs' settings: a resumed or evaluated checkpoint must have been
made with the same protocol config (trainers/run_record.py), and a result table averages only runs whose
recorded config agrees on every other key (results/identity.py).
"""
import fnmatch
import re

# Paths, devices, workers, logging and exact speed options; every other key of the merged config is part
# of the protocol. ``*`` matches one config level (TRAINER.<NAME>.ENCODER_CHUNK).
PROTOCOL_EXCLUDED = ("OUTPUT_DIR", "RESUME", "USE_CUDA", "VERBOSE", "DATASET.ROOT", "DATALOADER.NUM_WORKERS",
                     "DATALOADER.CACHE_TRAIN", "DATALOADER.CACHE_TEST", "DATALOADER.CACHE_MAX_MB",
                     "DATALOADER.TEST.BATCH_SIZE", "TRAIN.PRINT_FREQ", "TRAIN.CHECKPOINT_FREQ",
                     "TRAIN.RESUME_EVERY_EPOCH", "TRAINER.*.ENCODER_CHUNK", "TRAINER.*.FIRST_LAYER_SPLIT",
                     "TRAINER.BLACKBOX.QUERY_BUDGET")  # a budget stop is recorded (black_box.stopped_by_budget)


# fnmatchcase(key, pattern) for any pattern, as one compiled expression (a run record tests every config key).
_EXCLUDED = re.compile("|".join(fnmatch.translate(pattern) for pattern in PROTOCOL_EXCLUDED))


def is_excluded(key):
    """Is the dotted config ``key`` one that never changes the protocol?"""
    return _EXCLUDED.match(key) is not None
