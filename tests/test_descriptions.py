"""Description files: keys, lookup order, validation messages, and reproducible sampling."""
import json
import random
from pathlib import Path

import pytest

import descriptions
from descriptions import files as dfiles
from descriptions import (
    dataset_key,
    format_report,
    load_and_sample,
    load_descriptions,
    resolve_file,
    sample_descriptions,
)
from tests.conftest import DESCRIPTIONS as PUBLISHED_DESCRIPTIONS

SHARED = Path(PUBLISHED_DESCRIPTIONS)
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="published description files not available")


def write_json(path, obj):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return str(path)


def sentences(tag, n):
    return [f"{tag}: a sentence long enough to keep, number {i}." for i in range(n)]


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """Empty default and built-in folders, so the user's real downloads never leak in."""
    default, builtin = tmp_path / "files", tmp_path / "builtin"
    default.mkdir()
    builtin.mkdir()
    monkeypatch.setattr(dfiles, "DEFAULT_DIR", str(default))
    monkeypatch.setattr(dfiles, "BUILTIN_DIR", str(builtin))
    return default, builtin


# ------------------------------------------------------------------ keys

def test_dataset_keys_match_published_names():
    """The key is the loader's fact (datasets/catalog.py): the published file names' key of each dataset;
    test-only loaders (the ImageNet variants) use the descriptions of their training set."""
    from datasets.catalog import fact, registered_loaders
    from plugins import load_plugins

    load_plugins()
    keys = {cls.__name__: fact(cls, "descriptions_key") for cls in registered_loaders()
            if not fact(cls, "test_only") and cls.__module__.startswith("datasets.") and cls.__name__ != "ImageFolder"}
    assert keys == {
        "Caltech101": "caltech101", "DescribableTextures": "dtd", "EuroSAT": "eurosat",
        "FGVCAircraft": "fgvc", "Food101": "food101", "OxfordFlowers": "oxford_flowers",
        "OxfordPets": "oxford_pets", "StanfordCars": "stanford_cars", "SUN397": "sun397",
        "UCF101": "ucf101", "Resisc45": "resisc45", "ImageNet": "I", "Digits": "digits",
        "FashionMNIST": "", "MNIST": "",  # no published description files (the classifier-backbone datasets)
    }
    assert dataset_key("ImageFolder", "my_flowers") == "my_flowers"
    assert dataset_key("Caltech101", "caltech_v2") == "caltech_v2"


def test_user_dataset_without_key_says_how_to_fix():
    with pytest.raises(ValueError) as e:
        dataset_key("ImageFolder")
    msg = str(e.value)
    assert "'ImageFolder'" in msg and "DATASET.DESCRIPTIONS_KEY" in msg
    assert "python -m descriptions.generate" in msg


@pytest.mark.parametrize("bad", ["../etc", "a/b", " x", "-x"])
def test_key_override_must_be_a_plain_name(bad):
    with pytest.raises(ValueError, match="invalid description key"):
        dataset_key("ImageFolder", bad)


# ------------------------------------------------------------------ resolve_file

def test_default_folder_then_builtin(folders):
    default, builtin = folders
    b = write_json(builtin / "attributes" / "digits_des.json", {"0": ["x" * 30]})
    assert resolve_file("Digits", "attributes", "des", key="digits") == b
    d = write_json(default / "attributes" / "digits_des.json", {"0": ["y" * 30]})
    assert resolve_file("Digits", "attributes", "des", key="digits") == d  # downloaded files win over built-in
    c = write_json(builtin / "causes" / "digits_cse_2.json", {"0": ["z" * 30]})
    assert resolve_file("Digits", "causes", "cse_2", key="digits") == c


def test_descriptions_dir_replaces_default_folder(folders, tmp_path):
    default, builtin = folders
    mine = tmp_path / "mine"
    write_json(default / "attributes" / "eurosat_des.json", {"a": ["x" * 30]})
    with pytest.raises(FileNotFoundError):
        resolve_file("EuroSAT", "attributes", "des", descriptions_dir=str(mine), key="eurosat")
    p = write_json(mine / "attributes" / "eurosat_des.json", {"a": ["x" * 30]})
    assert resolve_file("EuroSAT", "attributes", "des", descriptions_dir=str(mine), key="eurosat") == p
    # the built-in folder still comes after the configured one
    q = write_json(builtin / "causes" / "eurosat_cse_1.json", {"a": ["x" * 30]})
    assert resolve_file("EuroSAT", "causes", "cse_1", descriptions_dir=str(mine), key="eurosat") == q


def test_key_override_in_resolve(folders):
    default, _ = folders
    p = write_json(default / "attributes" / "pets2_dist.json", {"a": ["x" * 30]})
    assert resolve_file("ImageFolder", "attributes", "dist", key="pets2") == p


def test_missing_published_file_names_paths_and_download(folders):
    default, builtin = folders
    with pytest.raises(FileNotFoundError) as e:
        resolve_file("Caltech101", "attributes", "des", key="caltech101")
    msg = str(e.value)
    assert "attributes/caltech101_des.json" in msg
    assert str(default / "attributes" / "caltech101_des.json") in msg
    assert str(builtin / "attributes" / "caltech101_des.json") in msg
    assert f"python -m descriptions.download --dest {default} --keys caltech101" in msg
    assert "DATASET.DESCRIPTIONS_DIR" in msg


def test_unknown_cause_suffix_lists_present_files(folders):
    default, _ = folders
    for s in ("cse_1", "cse_2", "cse_3"):
        write_json(default / "causes" / f"caltech101_{s}.json", {"a": ["x" * 30]})
    with pytest.raises(FileNotFoundError) as e:
        resolve_file("Caltech101", "causes", "csl_4", key="caltech101")
    msg = str(e.value)
    assert "cause files present for 'caltech101': cse_1, cse_2, cse_3" in msg
    assert "published cause files for 'caltech101': cse_1, cse_2, cse_3" in msg
    assert "python -m descriptions.generate" in msg  # csl_4 is not published for caltech101


def test_unpublished_key_points_to_generate(folders):
    with pytest.raises(FileNotFoundError) as e:
        resolve_file("ImageNet", "causes", "cse_1", key="I")
    msg = str(e.value)
    assert "no causes files are published for key 'I'" in msg
    assert "python -m descriptions.generate" in msg and "--key I" in msg


def test_bad_group_or_suffix():
    with pytest.raises(ValueError, match="'attributes' or 'causes'"):
        resolve_file("Caltech101", "cause", "cse_1", key="caltech101")
    with pytest.raises(ValueError, match="'des'.*'dist'"):
        resolve_file("Caltech101", "attributes", "descriptive", key="caltech101")
    with pytest.raises(ValueError, match="cse_1"):
        resolve_file("Caltech101", "causes", "../cse_1", key="caltech101")


@needs_shared
def test_resolve_in_published_folder():
    p = resolve_file("DescribableTextures", "causes", "csl_7", descriptions_dir=str(SHARED), key="dtd")
    assert p == str(SHARED / "causes" / "dtd_csl_7.json")


# ------------------------------------------------------------------ load / validate

@needs_shared
def test_load_published_eurosat_every_class():
    path = SHARED / "attributes" / "eurosat_des.json"
    raw = json.loads(path.read_text())
    classnames = ["Annual Crop Land", "Forest", "Herbaceous Vegetation Land", "Highway or Road",
                  "Industrial Buildings", "Pasture Land", "Permanent Crop Land",
                  "Residential Buildings", "River", "Sea or Lake"]
    d = load_descriptions(path, classnames)
    assert list(d) == classnames
    assert all(len(s) >= 20 for v in d.values() for s in v)
    assert d.dropped == sum(1 for v in raw.values() for s in v if len(s) < 20) == 7
    for c in classnames:  # order kept, only the short ones removed
        assert d[c] == [s for s in raw[c] if len(s) >= 20]


@needs_shared
def test_published_fragment_kept_like_the_reference_unless_strip():
    path = SHARED / "attributes" / "sun397_dist.json"
    ref = load_descriptions(path, ["van_interior"])
    assert " of the other scene." in ref["van_interior"]  # 20 characters as stored
    stripped = load_descriptions(path, ["van_interior"], strip=True)
    assert "of the other scene." not in stripped["van_interior"]
    assert len(stripped["van_interior"]) == len(ref["van_interior"]) - 1


def test_missing_classes_listed_with_close_matches(tmp_path):
    p = write_json(tmp_path / "d.json", {"Sea or Lake": sentences("s", 3), "forest": sentences("f", 3),
                                         "River": sentences("r", 3)})
    with pytest.raises(ValueError) as e:
        load_descriptions(p, ["River", "Sea_or_Lake", "Forest", "Pasture Land"])
    msg = str(e.value)
    assert p in msg
    assert "3 of 4 classes have no entry" in msg
    assert "'Sea_or_Lake', 'Forest', 'Pasture Land'" in msg
    assert "'Sea_or_Lake' -> 'Sea or Lake'" in msg
    assert "'Forest' -> 'forest'" in msg
    assert "'Pasture Land' ->" not in msg


def test_file_of_another_dataset_is_flagged(tmp_path):
    p = write_json(tmp_path / "d.json", {"cat": sentences("c", 2)})
    with pytest.raises(ValueError, match="none of the dataset's classes is in the file"):
        load_descriptions(p, ["airplane", "car"])


def test_short_sentences_dropped_in_order(tmp_path):
    p = write_json(tmp_path / "d.json", {
        "b": ["short one", "this sentence is long enough.", "tiny", "another long enough sentence."],
        "a": ["exactly twenty chars", "nineteen characters"],
        "extra": ["ignored class, not in the dataset"],
    })
    d = load_descriptions(p, ["a", "b"])
    assert list(d) == ["a", "b"]
    assert d["a"] == ["exactly twenty chars"]
    assert d["b"] == ["this sentence is long enough.", "another long enough sentence."]
    assert d.dropped == 3 and d.min_chars == 20 and d.path == p
    assert load_descriptions(p, ["a"], min_chars=5)["a"] == ["exactly twenty chars", "nineteen characters"]


def test_class_without_valid_sentence_is_named(tmp_path):
    p = write_json(tmp_path / "d.json", {"ok": sentences("o", 2), "bad": ["too short", ""],
                                         "empty": []})
    with pytest.raises(ValueError) as e:
        load_descriptions(p, ["ok", "bad", "empty"])
    msg = str(e.value)
    assert "2 class(es): 'bad', 'empty'" in msg and "at least 20 characters" in msg


def test_malformed_json_names_path(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"a": ["x", }', encoding="utf-8")
    with pytest.raises(ValueError) as e:
        load_descriptions(p, ["a"])
    assert str(p) in str(e.value) and "malformed JSON" in str(e.value) and "line 1" in str(e.value)


@pytest.mark.parametrize("obj, needle", [
    (["a", "b"], "expected a JSON object"),
    ({"a": "not a list"}, "'a'"),
    ({"a": ["fine sentence long enough", 3]}, "list of strings"),
])
def test_wrong_structure(tmp_path, obj, needle):
    p = write_json(tmp_path / "d.json", obj)
    with pytest.raises(ValueError) as e:
        load_descriptions(p, ["a"])
    assert needle in str(e.value) and p in str(e.value)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.json"):
        load_descriptions(tmp_path / "nothere.json", ["a"])


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
            expected[c] = random.sample(valid, 20) if 20 < len(valid) else random.choices(valid, k=20)
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


def test_load_and_sample_checks_every_file_first(folders, monkeypatch):
    default, _ = folders
    write_json(default / "causes" / "eurosat_cse_1.json", {"a": sentences("a", 20)})
    calls = []
    monkeypatch.setattr(descriptions.sampling, "sample_descriptions",
                        lambda *a, **k: calls.append(1))
    with pytest.raises(FileNotFoundError, match="eurosat_cse_2.json"):
        load_and_sample("EuroSAT", ["a"], [("causes", "cse_1"), ("causes", "cse_2")], 20, 0, key="eurosat")
    assert calls == []  # nothing sampled before every file is known good


def test_duplicate_class_names_share_one_entry(tmp_path):
    p = write_json(tmp_path / "I_des.json", {"crane": sentences("c", 25), "tench": sentences("t", 25)})
    d = load_descriptions(p, ["tench", "crane", "crane"])
    assert list(d) == ["tench", "crane"]
    sets_texts = [d[c] for c in ["tench", "crane", "crane"]]
    assert sets_texts[1] == sets_texts[2]


@needs_shared
def test_every_published_file_loads_with_its_own_classes():
    for path in sorted(SHARED.glob("*/*.json")):
        names = list(json.loads(path.read_text()))
        d = load_descriptions(path, names)
        assert len(d) == len(names) and all(d.values()), path
