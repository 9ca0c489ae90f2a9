"""Sampling m sentences per class, reproducibly, and the report line trainers print.

Two modes:

* ``reference`` (default) reproduces AttrVR / DVP: a class with more than m valid sentences gets
  ``rng.sample(sents, m)``; otherwise ``rng.choices(sents, k=m)`` (with replacement). The cause
  files hold exactly 20 sentences and m = 20, so there every class samples with replacement and
  repeats sentences (about 13 distinct of 20).
* ``without``: identical sentences are merged first (the published files repeat some texts
  verbatim), then ``rng.sample(sents, m)`` when a class has at least m distinct sentences (no
  repeats); with fewer, all of them in file order followed by ``rng.choices(sents, k=m - len)``
  to fill up (repeats only where unavoidable).

The generator is a private ``random.Random(seed)``, never the global ``random``, so the draw does
not depend on what else consumed random numbers (e.g. whether a few-shot split was cached).
The reference draws all its files from one seeded stream, one file after another (AttrVR: des
then dist; DVP-cse: cause 1, 2, 3); pass the same ``random.Random`` to successive calls, or use
:func:`load_and_sample`, to reproduce that.
"""
import random
from dataclasses import asdict, dataclass, field

from .files import load_descriptions, resolve_file

MODES = ("reference", "without")


@dataclass
class SamplingReport:
    """What sampling did; stored with the run next to the sampled sentences."""

    mode: str
    m: int
    seed: object
    num_classes: int
    repeat_classes: int  # classes whose m sampled sentences contain a repeated text
    mean_distinct: float  # distinct sentences per class, averaged over classes
    min_distinct: int
    # classes with fewer than m valid sentences (distinct ones in mode 'without')
    short_classes: list = field(default_factory=list)
    stream_index: int = 0  # position of this file in a shared generator (0: fresh generator)

    def to_dict(self):
        return asdict(self)


def _rng(seed):
    if isinstance(seed, random.Random):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int or a random.Random, got {type(seed).__name__}")
    return random.Random(seed)


def sample_descriptions(descs, m, seed, mode="reference"):
    """Draw m sentences for every class of ``descs`` ({class: [valid sentences]}, in class order).

    ``seed``: an int (a fresh ``random.Random(seed)``) or a ``random.Random`` to continue.
    Returns ``(sampled, report)``: {class: [m sentences]} in the same order, and a SamplingReport.
    """
    names = list(descs)
    picks, report = sample_per_label(descs, names, m, seed, mode=mode)
    return dict(zip(names, picks, strict=False)), report


def sample_per_label(descs, labels, m, seed, mode="reference"):
    """Draw m sentences for every label, in label order: ``labels`` are the class names by label index.

    A name that two labels share (ImageNet's two 'missile' and two 'sunglasses' classes) is drawn once
    per label, from the same generator, as the reference's loop over the class names does, so every
    later class gets the reference's sentences for the same seed. Returns ``(picks, report)``: one list
    of m sentences per label, and a SamplingReport.
    """
    if mode not in MODES:
        raise ValueError(f"unknown sampling mode {mode!r}: use one of {', '.join(MODES)}")
    if isinstance(m, bool) or not isinstance(m, int) or m < 1:
        raise ValueError(f"m (sentences per class) must be a positive integer, got {m!r}")
    rng = _rng(seed)
    picks = []
    short = []
    for name in labels:
        sents = list(descs[name]) if mode == "reference" else list(dict.fromkeys(descs[name]))
        if not sents:
            raise ValueError(f"class {name!r} has no valid sentence to sample from")
        n = len(sents)
        if n < m:
            short.append(name)
        if mode == "reference":
            pick = rng.sample(sents, m) if n > m else rng.choices(sents, k=m)
        else:
            pick = rng.sample(sents, m) if n >= m else sents + rng.choices(sents, k=m - n)
        picks.append(pick)
    distinct = [len(set(v)) for v in picks]
    report = SamplingReport(
        mode=mode,
        m=m,
        seed=seed if not isinstance(seed, random.Random) else "continued",
        num_classes=len(picks),
        repeat_classes=sum(1 for d in distinct if d < m),
        mean_distinct=(sum(distinct) / len(distinct)) if distinct else 0.0,
        min_distinct=min(distinct) if distinct else 0,
        short_classes=short,
    )
    return picks, report


def format_report(path, report, dropped=None, min_chars=None):
    """The one line trainers print before training, e.g.

    ``descriptions: attributes/caltech101_des.json, 100 classes, m=20 (reference sampling),
    16 classes repeat sentences (19.8 distinct of 20 on average, min 14), 29 short sentences
    dropped (< 20 chars) [/repo/descriptions/files]``

    (A repeat is an identical text drawn twice: the published files hold some texts twice.)

    ``path`` may be a path or a :class:`~descriptions.files.Descriptions` (then ``dropped`` and
    ``min_chars`` come from it).
    """
    if hasattr(path, "path") and hasattr(path, "dropped"):
        dropped = path.dropped if dropped is None else dropped
        min_chars = path.min_chars if min_chars is None else min_chars
        path = path.path
    path = str(path)
    parts = path.replace("\\", "/").rsplit("/", 2)
    if len(parts) == 3:
        shown, folder = f"{parts[1]}/{parts[2]}", parts[0]
    else:
        shown, folder = path, ""
    r = report
    text = (f"descriptions: {shown}, {r.num_classes} classes, m={r.m} ({r.mode} sampling), "
            f"{r.repeat_classes} classes repeat sentences "
            f"({r.mean_distinct:.1f} distinct of {r.m} on average, min {r.min_distinct})")
    if r.short_classes:
        which = "distinct valid" if r.mode == "without" else "valid"
        text += f", {len(r.short_classes)} classes have fewer than m={r.m} {which} sentences"
    if dropped is not None:
        text += f", {dropped} short sentences dropped"
        if min_chars is not None:
            text += f" (< {min_chars} chars)"
    if folder:
        text += f" [{folder}]"
    return text


@dataclass
class DescriptionSet:
    """One description file, loaded, validated and sampled."""

    group: str
    suffix: str
    path: str
    classnames: list  # the class name of every label, in label order (names may repeat)
    sentences: list  # [m sampled sentences] per label, in label order
    report: SamplingReport
    line: str  # the report line to print / log
    dropped: int = 0

    def texts(self, classnames):
        """The sampled sentences as a list per class index (each label has its own draw)."""
        if list(classnames) != self.classnames:
            raise ValueError("DescriptionSet.texts: the class names differ from those it was sampled for.")
        return self.sentences

    def to_dict(self):
        return {"group": self.group, "suffix": self.suffix, "path": self.path, "classnames": self.classnames,
                "sentences": self.sentences, "report": self.report.to_dict()}


def load_and_sample(dataset_name, classnames, files, m, seed, mode="reference",
                    descriptions_dir="", key="", min_chars=20, strip=False):
    """Resolve, validate and sample several description files for one run.

    ``files``: a list of (group, suffix), e.g. ``[("attributes", "des"), ("attributes", "dist")]``
    or ``[("causes", "cse_1"), ("causes", "cse_2"), ("causes", "cse_3")]``. Every file is
    resolved and validated before anything is sampled, so a bad file fails before long work.
    All files draw from one ``random.Random(seed)`` in the given order, and within a file once per
    label in label order (duplicated names included), as the reference does.
    Returns a list of :class:`DescriptionSet`.
    """
    files = [tuple(f) for f in files]
    classnames = list(classnames)
    if not files:
        raise ValueError("load_and_sample: no description files requested")
    loaded = []
    for group, suffix in files:
        path = resolve_file(dataset_name, group, suffix, descriptions_dir=descriptions_dir, key=key)
        loaded.append((group, suffix, load_descriptions(path, classnames, min_chars=min_chars, strip=strip)))
    rng = _rng(seed)
    out = []
    for i, (group, suffix, descs) in enumerate(loaded):
        picks, report = sample_per_label(descs, classnames, m, rng, mode=mode)
        report.seed = seed if not isinstance(seed, random.Random) else "continued"
        report.stream_index = i
        out.append(DescriptionSet(group, suffix, descs.path, classnames, picks, report,
                                  format_report(descs, report), descs.dropped))
    return out
