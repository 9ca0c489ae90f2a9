"""`python -m descriptions.download` against a local server laid out like the two repositories."""
import functools
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest

from descriptions import download as dl
from descriptions.published import (
    BASE_URL_ENV,
    PublishedFile,
    published_files,
    published_suffixes,
)
from tests.conftest import DESCRIPTIONS as PUBLISHED_DESCRIPTIONS

SHARED = Path(PUBLISHED_DESCRIPTIONS)
ATTR_DIR = "caichengyi/AttrVR/main/attributes/gpt3"
CAUSE_DIR = "caichengyi/DecoupledVP/main/causes"


class _Handler(http.server.SimpleHTTPRequestHandler):
    requested = None  # list shared with the test

    def do_GET(self):
        self.requested.append(self.path)
        super().do_GET()

    def log_message(self, *args):
        pass


def _content(key, suffix):
    return {f"{key} class {i}": [f"{key} {suffix} sentence {j} is long enough." for j in range(4)]
            for i in range(3)}


@pytest.fixture
def server(tmp_path, monkeypatch):
    """Serve eurosat and dtd files in the repositories' layouts on 127.0.0.1 (random port)."""
    root = tmp_path / "www"
    for key in ("eurosat", "dtd"):
        for group, folder in (("attributes", ATTR_DIR), ("causes", CAUSE_DIR)):
            for suffix in published_suffixes(group, key):
                p = root / folder / f"{key}_{suffix}.json"
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(json.dumps(_content(key, suffix)), encoding="utf-8")
    requested = []
    handler = type("H", (_Handler,), {"requested": requested})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            functools.partial(handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setattr(dl, "RETRY_DELAY_S", 0.0)
    yield root, requested
    httpd.shutdown()
    httpd.server_close()


def test_urls_point_at_the_two_repositories(monkeypatch):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    assert PublishedFile("attributes", "dtd_des.json").url == \
        "https://raw.githubusercontent.com/caichengyi/AttrVR/main/attributes/gpt3/dtd_des.json"
    assert PublishedFile("causes", "fgvc_csl_5.json").url == \
        "https://raw.githubusercontent.com/caichengyi/DecoupledVP/main/causes/fgvc_csl_5.json"
    monkeypatch.setenv(BASE_URL_ENV, "http://mirror.example/raw/")
    assert PublishedFile("causes", "dtd_cse_1.json").url == \
        "http://mirror.example/raw/caichengyi/DecoupledVP/main/causes/dtd_cse_1.json"


def test_published_list():
    files = published_files()
    assert len(files) == 24 + 33 + 12  # 12 keys x (des, dist); 11 keys x 3 causes; 3 keys x 4 more
    names = {f.relpath for f in files}
    assert "attributes/I_dist.json" in names and "causes/oxford_flowers_csl_7.json" in names
    assert not any(n.startswith("causes/I_") for n in names)
    if SHARED.is_dir():  # the same set as the copy the project was given
        assert names == {f"{p.parent.name}/{p.name}" for p in SHARED.glob("*/*.json")}


def test_download_into_dest_then_skip(server, tmp_path, capsys):
    root, requested = server
    dest = tmp_path / "dest"
    assert dl.main(["--dest", str(dest), "--keys", "eurosat", "dtd"]) == 0
    got = sorted(str(p.relative_to(dest)) for p in dest.rglob("*.json"))
    assert len(got) == 2 * 2 + 3 + 7
    assert "causes/dtd_csl_7.json" in got and "attributes/eurosat_dist.json" in got
    for rel in got:
        group, name = rel.split("/")
        src = root / (ATTR_DIR if group == "attributes" else CAUSE_DIR) / name
        assert json.loads((dest / rel).read_text()) == json.loads(src.read_text())
    out = capsys.readouterr().out
    assert "[1/14] attributes/eurosat_des.json: downloaded (3 classes" in out
    assert "done: 14 downloaded, 0 already present, 0 failed" in out
    assert len(requested) == 14

    requested.clear()
    assert dl.main(["--dest", str(dest), "--keys", "eurosat", "dtd"]) == 0
    assert requested == []
    assert "done: 0 downloaded, 14 already present" in capsys.readouterr().out

    # an invalid file in place is replaced; --force fetches everything again
    (dest / "causes" / "dtd_cse_2.json").write_text("{broken", encoding="utf-8")
    assert dl.main(["--dest", str(dest), "--keys", "dtd", "--only", "causes"]) == 0
    assert len(requested) == 1 and requested[0].endswith("/causes/dtd_cse_2.json")
    assert json.loads((dest / "causes" / "dtd_cse_2.json").read_text()) == _content("dtd", "cse_2")
    requested.clear()
    assert dl.main(["--dest", str(dest), "--keys", "eurosat", "--force"]) == 0
    assert len(requested) == 5


def test_only_attributes(server, tmp_path):
    dest = tmp_path / "dest"
    assert dl.main(["--dest", str(dest), "--only", "attributes", "--keys", "dtd"]) == 0
    assert sorted(p.name for p in dest.rglob("*.json")) == ["dtd_des.json", "dtd_dist.json"]
    assert not (dest / "causes").exists()


def test_failures_reported_and_not_written(server, tmp_path, capsys):
    root, _ = server
    (root / ATTR_DIR / "eurosat_dist.json").unlink()  # -> 404
    (root / CAUSE_DIR / "eurosat_cse_2.json").write_text('{"a": ["x", ', encoding="utf-8")
    (root / CAUSE_DIR / "eurosat_cse_3.json").write_text('{"a": "not a list"}', encoding="utf-8")
    dest = tmp_path / "dest"
    assert dl.main(["--dest", str(dest), "--keys", "eurosat"]) == 1
    captured = capsys.readouterr()
    err = captured.err
    assert "3 file(s) failed" in err
    assert "attributes/eurosat_dist.json: HTTP 404" in err and "eurosat_dist.json" in err
    assert "causes/eurosat_cse_2.json: invalid content" in err and "malformed JSON" in err
    assert "causes/eurosat_cse_3.json: invalid content" in err
    assert "https://github.com/caichengyi/AttrVR/tree/main/attributes/gpt3" in err
    assert "https://github.com/caichengyi/DecoupledVP/tree/main/causes" in err
    assert str(dest / "attributes") in err
    assert "done: 2 downloaded, 0 already present, 3 failed" in captured.out
    assert sorted(p.name for p in dest.rglob("*.json")) == ["eurosat_cse_1.json", "eurosat_des.json"]
    assert not list(dest.rglob("*.tmp"))


def test_network_failure_stops_with_url_and_manual_step(tmp_path, monkeypatch, capsys):
    with socket.socket() as s:  # a port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv(BASE_URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setattr(dl, "NETWORK_RETRIES", 0)
    dest = tmp_path / "dest"
    assert dl.main(["--dest", str(dest), "--keys", "oxford_pets"]) == 1
    err = capsys.readouterr().err
    url = f"http://127.0.0.1:{port}/caichengyi/AttrVR/main/attributes/gpt3/oxford_pets_des.json"
    assert f"could not reach {url}" in err
    assert "not attempted after the network error" in err
    assert "Manual step" in err and "https://github.com/caichengyi/AttrVR/tree/main/attributes/gpt3" in err


def test_bad_keys(capsys):
    assert dl.main(["--keys", "dtd", "imagenet"]) == 2
    err = capsys.readouterr().err
    assert "'imagenet'" not in err and "imagenet" in err and "Published keys: I, caltech101" in err
    assert dl.main(["--keys", "I", "--only", "causes"]) == 2
    assert "nothing to download" in capsys.readouterr().err
