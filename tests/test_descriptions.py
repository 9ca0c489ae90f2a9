"""Description files: keys, lookup order, validation messages (sampling: test_descriptions_sampling.py)."""
import json

import pytest

import descriptions
from descriptions import (
    dataset_key,
    load_and_sample,
    load_descriptions,
    resolve_file,
)
from descriptions import files as dfiles
from tests.description_helpers import SHARED, needs_shared, sentences, write_json


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
