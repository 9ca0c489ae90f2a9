"""`python -m descriptions.generate` against a fake OpenAI-compatible server on 127.0.0.1."""
import http.server
import json
import re
import threading

import pytest

from descriptions import generate as gen
from descriptions import load_descriptions
from descriptions.generate import build_messages, parse_sentences, read_classnames


class FakeOpenAI:
    """Answers POST /v1/chat/completions with a numbered list about the class in the prompt.

    ``behaviour(label, body)`` may return (status, text) to override the answer.
    """

    def __init__(self):
        self.requests = []  # (headers, body)
        self.queries = []  # the query string of each request
        self.behaviour = None
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((dict(self.headers), body))
                route, _, query = self.path.partition("?")
                fake.queries.append(query)
                if route != "/v1/chat/completions":
                    return self._send(404, "no such route")
                user = body["messages"][-1]["content"]
                label = re.search(r'called "([^"]+)"', user).group(1)
                n = int(re.search(r"Write (\d+) different", user).group(1))
                if fake.behaviour:
                    out = fake.behaviour(label, body)
                    if out is not None:
                        status, text = out
                        if status != 200:
                            return self._send(status, text)
                        return self._answer(text)
                lines = [f"Here are {n} sentences:", ""]
                lines += [f"{i}. **The {label}** shows visible detail number {i}." for i in range(1, n + 1)]
                self._answer("\n".join(lines))

            def _answer(self, text):
                self._send(200, json.dumps({"choices": [{"message": {"role": "assistant",
                                                                      "content": text}}]}))

            def _send(self, status, text):
                data = text.encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def labels(self):
        return [re.search(r'called "([^"]+)"', b["messages"][-1]["content"]).group(1)
                for _, b in self.requests]


@pytest.fixture
def fake(monkeypatch):
    srv = FakeOpenAI()
    thread = threading.Thread(target=srv.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", srv.url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("VR_DESCRIPTIONS_MODEL", "fake-model")
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


FAST = ["--retry-delay", "0", "--retries", "0"]


def test_generate_des_file(fake, tmp_path, capsys):
    names = "red_fox,Grey Wolf,arctic hare,otter"
    assert gen.main(["--classnames", names, "--key", "wild", "--dest", str(tmp_path),
                     "--kind", "des", "--n", "5", *FAST]) == 0
    path = tmp_path / "attributes" / "wild_des.json"
    data = json.loads(path.read_text())
    assert list(data) == ["red_fox", "Grey Wolf", "arctic hare", "otter"]
    assert data["red_fox"] == [f"The red fox shows visible detail number {i}." for i in range(1, 6)]
    assert fake.labels() == ["red fox", "Grey Wolf", "arctic hare", "otter"]
    headers, body = fake.requests[0]
    assert body["model"] == "fake-model" and body["temperature"] == 0.7
    assert [m["role"] for m in body["messages"]] == ["system", "user"]
    assert "visual appearance" in body["messages"][1]["content"]
    assert headers["Authorization"] == "Bearer sk-test"
    d = load_descriptions(path, ["otter", "red_fox"])  # usable by the trainers as is
    assert len(d["otter"]) == 5
    out = capsys.readouterr().out
    assert "with model 'fake-model'" in out and "DATASET.DESCRIPTIONS_KEY wild" in out


def test_default_kinds_and_causes(fake, tmp_path):
    folder = tmp_path / "data"
    for c in ("cat", "dog", "bird"):
        (folder / c).mkdir(parents=True)
    (folder / ".hidden").mkdir()
    (folder / "notes.txt").write_text("not a class")
    dest = tmp_path / "out"
    assert gen.main(["--classnames", str(folder), "--key", "pets3", "--dest", str(dest),
                     "--causes", "shape, colour", "--n", "3", "--domain", "pet", *FAST]) == 0
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*.json")) == [
        "attributes/pets3_des.json", "attributes/pets3_dist.json",
        "causes/pets3_cse_1.json", "causes/pets3_cse_2.json"]
    assert len(fake.requests) == 4 * 3
    users = [b["messages"][-1]["content"] for _, b in fake.requests]
    assert 'the shape of a pet called "bird"' in users[6]
    assert 'the colour of a pet called "bird"' in users[9]
    assert '"cat", "dog"' in users[3] and "different from other pet categories" in users[3]
    for rel in ("causes/pets3_cse_1.json", "attributes/pets3_dist.json"):
        assert list(json.loads((dest / rel).read_text())) == ["bird", "cat", "dog"]


def test_resume_after_failure_does_not_ask_again(fake, tmp_path, capsys):
    names = ["alpha", "beta", "gamma", "delta"]
    fake.behaviour = lambda label, body: (500, '{"error": "boom on gamma"}') if label == "gamma" else None
    args = ["--classnames", ",".join(names), "--key", "greek", "--dest", str(tmp_path),
            "--kind", "des", "--n", "4", *FAST]
    assert gen.main(args) == 1
    err = capsys.readouterr().err
    assert "stopped at class 'gamma'" in err and "HTTP 500" in err and "boom on gamma" in err
    assert "2 of 4 classes are saved" in err and "run the same command again" in err
    path = tmp_path / "attributes" / "greek_des.json"
    assert list(json.loads(path.read_text())) == ["alpha", "beta"]
    assert fake.labels() == ["alpha", "beta", "gamma"]
    fake.requests.clear()
    fake.behaviour = None
    assert gen.main(args) == 0
    assert fake.labels() == ["gamma", "delta"]
    assert list(json.loads(path.read_text())) == names
    fake.requests.clear()
    assert gen.main(args) == 0  # all done: nothing asked
    assert fake.requests == []
    assert "nothing to do" in capsys.readouterr().out


def test_transient_error_is_retried(fake, tmp_path):
    seen = []

    def flaky(label, body):
        seen.append(label)
        return (503, "busy") if len(seen) == 1 else None

    fake.behaviour = flaky
    assert gen.main(["--classnames", "a_thing", "--key", "k", "--dest", str(tmp_path), "--kind",
                     "des", "--n", "2", "--retry-delay", "0", "--retries", "2"]) == 0
    assert seen == ["a thing", "a thing"]


def test_empty_answers_retried_then_named(fake, tmp_path, capsys):
    fake.behaviour = lambda label, body: (200, "") if label == "beta" else None
    assert gen.main(["--classnames", "alpha,beta", "--key", "k", "--dest", str(tmp_path),
                     "--kind", "dist", "--n", "2", "--attempts", "3", *FAST]) == 1
    err = capsys.readouterr().err
    assert "stopped at class 'beta'" in err and "no usable sentence" in err and "3 attempt(s)" in err
    assert fake.labels() == ["alpha", "beta", "beta", "beta"]


def test_short_answer_topped_up(fake, tmp_path):
    answers = iter(["1. First answer sentence about it here.",
                    "1. First answer sentence about it here.\n2. A second, different sentence."])
    fake.behaviour = lambda label, body: (200, next(answers))
    assert gen.main(["--classnames", "x_class", "--key", "k", "--dest", str(tmp_path),
                     "--kind", "des", "--n", "2", *FAST]) == 0
    data = json.loads((tmp_path / "attributes" / "k_des.json").read_text())
    assert data == {"x_class": ["First answer sentence about it here.",
                                "A second, different sentence."]}


def test_http_error_message(fake, tmp_path, capsys):
    fake.behaviour = lambda label, body: (401, '{"error": {"message": "Incorrect API key"}}')
    assert gen.main(["--classnames", "a,b", "--key", "k", "--dest", str(tmp_path), "--kind",
                     "des", *FAST]) == 1
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "Incorrect API key" in err and "OPENAI_API_KEY" in err
    assert len(fake.requests) == 1


def test_credentials_in_the_base_url_are_used_but_never_shown(fake, tmp_path, capsys, monkeypatch):
    """Issue 10 defect 9: user:password@ goes into a Basic header and query tokens to the server,
    but neither appears in any message (progress lines or errors)."""
    secret_url = fake.url.replace("http://", "http://bob:s3cret@") + "?api-key=TOKEN42"
    monkeypatch.setenv("OPENAI_BASE_URL", secret_url)
    monkeypatch.delenv("OPENAI_API_KEY")
    assert gen.main(["--classnames", "a_b,c_d", "--key", "k", "--dest", str(tmp_path), "--kind", "des",
                     *FAST]) == 0
    headers, _ = fake.requests[0]
    assert headers["Authorization"] == "Basic Ym9iOnMzY3JldA=="  # base64 of bob:s3cret
    assert fake.queries[0] == "api-key=TOKEN42"
    fake.behaviour = lambda label, body: (500, "server down")
    assert gen.main(["--classnames", "e_f", "--key", "k2", "--dest", str(tmp_path), "--kind", "des",
                     *FAST]) == 1
    monkeypatch.setenv("OPENAI_BASE_URL", "ftp://bob:s3cret@host/v1?api-key=TOKEN42")
    assert gen.main(["--classnames", "e_f", "--key", "k3", "--dest", str(tmp_path), *FAST]) == 1
    out = capsys.readouterr()
    text = out.out + out.err
    assert "HTTP 500" in text and "is not an http(s) URL" in text
    assert "api-key=***" in text
    assert "s3cret" not in text and "TOKEN42" not in text and "bob" not in text


def test_generated_files_get_the_usual_permissions(fake, tmp_path):
    """Issue 10 defect 9: description files are meant to be shared: umask permissions, not 0600."""
    import os

    old = os.umask(0o022)
    try:
        assert gen.main(["--classnames", "a_b", "--key", "k", "--dest", str(tmp_path), "--kind", "des",
                         *FAST]) == 0
    finally:
        os.umask(old)
    assert ((tmp_path / "attributes" / "k_des.json").stat().st_mode & 0o777) == 0o644


def test_no_endpoint_configured(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert gen.main(["--classnames", "a,b", "--key", "k", "--dest", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "no chat endpoint configured" in err and "OPENAI_BASE_URL" in err
    assert not (tmp_path / "attributes").exists()


def test_usage_errors(fake, tmp_path, capsys):
    assert gen.main(["--classnames", str(tmp_path / "missing.txt"), "--key", "k",
                     "--dest", str(tmp_path)]) == 1
    assert "no such file or folder" in capsys.readouterr().err
    assert gen.main(["--classnames", "a,b", "--key", "k", "--dest", str(tmp_path),
                     "--kind", "causes"]) == 1
    assert "--causes" in capsys.readouterr().err
    assert gen.main(["--classnames", "a,b", "--key", "../k", "--dest", str(tmp_path)]) == 1
    assert "invalid description key" in capsys.readouterr().err
    bad = tmp_path / "attributes" / "k_des.json"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    assert gen.main(["--classnames", "a,b", "--key", "k", "--dest", str(tmp_path),
                     "--kind", "des"]) == 1
    err = capsys.readouterr().err
    assert "cannot continue the partial file" in err and str(bad) in err
    assert fake.requests == []


def test_read_classnames(tmp_path):
    f = tmp_path / "classes.txt"
    f.write_text("# my classes\nrose\n\nsun flower\nrose\n")
    assert read_classnames(str(f)) == ["rose", "sun flower"]
    j = tmp_path / "classes.json"
    j.write_text(json.dumps(["b", "a"]))
    assert read_classnames(str(j)) == ["b", "a"]
    assert read_classnames("a, b ,c") == ["a", "b", "c"]
    with pytest.raises(ValueError, match="no class sub-folders"):
        read_classnames(str(tmp_path))
    for split, classes in (("train", ("b_cls", "a_cls")), ("test", ("a_cls",))):
        for c in classes:
            (tmp_path / "ds" / split / c).mkdir(parents=True)
    assert read_classnames(str(tmp_path / "ds")) == ["a_cls", "b_cls"]


def test_parse_sentences():
    text = "Sure! Here they are:\n\n1. First one.\n2) Second one.\n- Third one.\n* **Fourth** one.\n3. First one."
    assert parse_sentences(text) == ["First one.", "Second one.", "Third one.", "Fourth one."]
    assert parse_sentences("A plain answer. It has two sentences.") == [
        "A plain answer.", "It has two sentences."]
    assert parse_sentences("line one\nline two") == ["line one", "line two"]
    assert parse_sentences("") == []
    assert parse_sentences('1. "Quoted sentence."') == ["Quoted sentence."]


def test_prompts_name_the_class_and_kind():
    des = build_messages("des", "Yellow_Lady's slipper", 25, domain="flower")[1]["content"]
    assert 'a flower called "Yellow Lady\'s slipper"' in des and "Write 25 different" in des
    dist = build_messages("dist", "otter", 5, domain="animal", others=["seal"])[1]["content"]
    assert 'an animal called "otter"' in dist and '"seal"' in dist
    cse = build_messages("causes", "otter", 20, cause="texture")[1]["content"]
    assert "the texture of an object" in cse
    with pytest.raises(ValueError):
        build_messages("causes", "otter", 20)
