"""Description sampling: the reference stream (random.sample / random.choices), duplicated class names, the
without-repeats mode, determinism and the report line."""
import json
import random

import pytest

from descriptions import (
    format_report,
    load_and_sample,
    load_descriptions,
    sample_descriptions,
)
from tests.description_helpers import SHARED, needs_shared, sentences, write_json

# ------------------------------------------------------------------ sampling

def reference_sampling(data, classnames, m, seed_or_rng):
    """The reference algorithm, stated independently: filter len >= 20, then sample if more than m
    else choices, one generator over the class names in label order (a list per label)."""
    rng = random.Random(seed_or_rng) if isinstance(seed_or_rng, int) else seed_or_rng
    out = []
    for c in classnames:
        valid = [s for s in data[c] if len(s) >= 20]
        out.append(rng.sample(valid, m) if m < len(valid) else rng.choices(valid, k=m))
    return out


@needs_shared
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_mode_reproduces_reference_stream(seed):
    """AttrVR draws des then dist from one seeded stream; load_and_sample does the same."""
    des = json.loads((SHARED / "attributes" / "dtd_des.json").read_text())
    dist = json.loads((SHARED / "attributes" / "dtd_dist.json").read_text())
    classnames = list(des)
    rng = random.Random(seed)
    exp_des = reference_sampling(des, classnames, 20, rng)
    exp_dist = reference_sampling(dist, classnames, 20, rng)
    sets = load_and_sample("DescribableTextures", classnames,
                           [("attributes", "des"), ("attributes", "dist")], m=20, seed=seed,
                           descriptions_dir=str(SHARED), key="dtd")
    assert sets[0].sentences == exp_des
    assert sets[1].sentences == exp_dist
    assert sets[1].report.stream_index == 1 and sets[1].report.seed == seed
    assert sets[0].texts(classnames)[3] == exp_des[3]


def test_duplicated_class_names_draw_once_per_label_in_label_order(tmp_path):
    """ImageNet has two 'missile' and two 'sunglasses' classes: each label gets its own draw from the one
    generator, so the classes after a duplicate get the reference's sentences for the same seed."""
    from vr import description_table

    data = {c: sentences(c, n) for c, n in [("a", 25), ("missile", 30), ("b", 22), ("sunglasses", 26), ("c", 9)]}
    write_json(tmp_path / "attributes" / "mine_des.json", data)
    labels = ["a", "missile", "b", "missile", "sunglasses", "sunglasses", "c"]
    (got,) = load_and_sample("Mine", labels, [("attributes", "des")], m=20, seed=3,
                             descriptions_dir=str(tmp_path), key="mine")
    expected = reference_sampling(data, labels, 20, 3)
    assert got.sentences == expected and got.classnames == labels
    assert got.sentences[1] != got.sentences[3] and got.sentences[4] != got.sentences[5]  # own draws
    assert got.report.num_classes == 7 and got.report.short_classes == ["c"]
    table = description_table(labels, [got.sentences])
    assert [table.texts[3 * 20 + j][0] for j in range(20)] == expected[3]
    assert [table.texts[6 * 20 + j][0] for j in range(20)] == expected[6]


def test_reference_mode_equals_global_random_after_seeding(tmp_path):
    """Same draws as the reference's `random.seed(s); random.sample / random.choices`."""
    data = {f"c{i}": sentences(f"c{i}", n) for i, n in enumerate([25, 20, 7, 21, 3])}
    classnames = list(data)
    state = random.getstate()
    try:
        random.seed(5)
        expected = {}
        for c in classnames:
            valid = [s for s in data[c] if len(s) >= 20]
            expected[c] = random.sample(valid, 20) if len(valid) > 20 else random.choices(valid, k=20)
    finally:
        random.setstate(state)
    got, report = sample_descriptions(data, 20, 5)
    assert got == expected
    assert report.repeat_classes == 3  # 20, 7 and 3 sentences: drawn with replacement
    assert report.short_classes == ["c2", "c4"]


@needs_shared
def test_twenty_of_twenty_quirk_repeats_sentences():
    cse = load_descriptions(SHARED / "causes" / "eurosat_cse_2.json",
                            list(json.loads((SHARED / "causes" / "eurosat_cse_2.json").read_text())))
    assert all(len(v) == 20 for v in cse.values())
    sampled, report = sample_descriptions(cse, 20, 0)
    assert report.repeat_classes == report.num_classes == 10
    assert 10 < report.mean_distinct < 16  # about 13 of 20 (1 - 1/e)
    assert all(len(v) == 20 for v in sampled.values())
    without, rep2 = sample_descriptions(cse, 20, 0, mode="without")
    assert rep2.repeat_classes == 0 and rep2.mean_distinct == 20
    for c in cse:
        assert sorted(without[c]) == sorted(cse[c])  # every sentence exactly once


def test_without_mode():
    data = {"many": sentences("m", 30), "few": sentences("f", 5),
            "dups": sentences("d", 3) * 4}  # 12 entries but only 3 distinct texts
    got, report = sample_descriptions(data, 8, 3, mode="without")
    assert len(set(got["many"])) == 8 and set(got["many"]) <= set(data["many"])
    assert got["few"][:5] == data["few"] and len(got["few"]) == 8  # all, then filled up
    assert got["dups"][:3] == data["dups"][:3] and len(got["dups"]) == 8
    assert report.repeat_classes == 2 and report.short_classes == ["few", "dups"]
    assert report.min_distinct == 3


def test_sampling_deterministic_and_private():
    data = {f"c{i}": sentences(f"c{i}", 25) for i in range(6)}
    a, _ = sample_descriptions(data, 20, 7)
    random.random()  # consuming the global generator must not matter
    random.seed(12345)
    b, _ = sample_descriptions(data, 20, 7)
    assert a == b
    c, _ = sample_descriptions(data, 20, 8)
    assert a != c
    state = random.getstate()
    sample_descriptions(data, 20, 7)
    assert random.getstate() == state  # the global generator is never touched


def test_sampling_argument_errors():
    data = {"a": sentences("a", 3)}
    with pytest.raises(ValueError, match="mode"):
        sample_descriptions(data, 2, 0, mode="with")
    with pytest.raises(ValueError, match="positive integer"):
        sample_descriptions(data, 0, 0)
    with pytest.raises(TypeError, match="seed"):
        sample_descriptions(data, 2, "0")
    with pytest.raises(ValueError, match="'b'"):
        sample_descriptions({"b": []}, 2, 0)


def test_report_line(tmp_path):
    folder = tmp_path / "files"
    p = write_json(folder / "attributes" / "caltech101_des.json",
                   {"a": sentences("a", 25) + ["short"], "b": sentences("b", 20)})
    d = load_descriptions(p, ["a", "b"])
    _, report = sample_descriptions(d, 20, 0)
    line = format_report(d, report)
    assert line.startswith("descriptions: attributes/caltech101_des.json, 2 classes, m=20 "
                           "(reference sampling), 1 classes repeat sentences (")
    assert "1 short sentences dropped (< 20 chars)" in line
    assert line.endswith(f"[{folder}]")
    assert report.to_dict()["num_classes"] == 2
