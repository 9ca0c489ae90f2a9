"""CoOp's base/new class split (``DATASET.SUBSAMPLE_CLASSES``), for any loader.

``subsample_classes(train, val, test, subsample="base")``: the labels present in the *first* list are
sorted and cut in two halves, the first ceil(n/2) are "base", the rest "new"; every list keeps only the
chosen half, relabelled 0..m-1 in the same order (class names unchanged). "all" returns the lists as
they are. Call it after the few-shot step (CoOp's caches hold all classes).
"""
import math

CHOICES = ("all", "base", "new")


def subsample_classes(*datasets, subsample="all"):
    """Keep the base or new half of the classes in each list of Datum (see the module docstring)."""
    from engine import Datum

    subsample = str(subsample).lower()
    if subsample not in CHOICES:
        raise ValueError(f"DATASET.SUBSAMPLE_CLASSES must be one of {list(CHOICES)}, got {subsample!r}.")
    if subsample == "all":
        return datasets
    labels = sorted({item.label for item in datasets[0]})
    m = math.ceil(len(labels) / 2)
    selected = labels[:m] if subsample == "base" else labels[m:]
    print(f"SUBSAMPLE {subsample.upper()} CLASSES!")
    relabel = {y: y_new for y_new, y in enumerate(selected)}
    output = []
    for dataset in datasets:
        output.append([
            Datum(impath=item.impath, label=relabel[item.label], domain=item.domain, classname=item.classname)
            for item in dataset if item.label in relabel
        ])
    return output
