"""A minimal client for any OpenAI-compatible chat completions endpoint (standard library only).

Configuration comes from the environment, as OpenAI's own clients do:
``OPENAI_BASE_URL`` (e.g. https://api.openai.com/v1 or a local server such as
http://127.0.0.1:8000/v1), ``OPENAI_API_KEY`` (sent as a Bearer token when set) and
``VR_DESCRIPTIONS_MODEL`` (default gpt-4o-mini). With only OPENAI_API_KEY set, the base URL
defaults to https://api.openai.com/v1.
"""
import base64
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "VR_DESCRIPTIONS_MODEL"
DEFAULT_MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)


class ChatError(RuntimeError):
    """The endpoint could not give an answer (configuration, network, HTTP or format problem)."""


def redact_url(url):
    """``url`` without its secrets, for messages: user:password@ and query values become ***."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    query = "&".join(f"{pair.split('=', 1)[0]}=***" if pair else pair for pair in parts.query.split("&")) \
        if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def _split_url(url):
    """(base URL, query, 'user:password' or ''): the query goes after the endpoint path, the
    credentials into a header only."""
    parts = urllib.parse.urlsplit(url)
    userinfo, _, host = parts.netloc.rpartition("@")
    base = urllib.parse.urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))
    return base, parts.query, urllib.parse.unquote(userinfo)


def _excerpt(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "..."


class ChatClient:
    """POST {base_url}/chat/completions with {model, messages, temperature}; return the content."""

    def __init__(self, base_url, model=DEFAULT_MODEL, api_key="", temperature=0.7, timeout=120,
                 retries=3, retry_delay=2.0):
        if not base_url:
            raise ChatError(f"no chat endpoint configured: set {BASE_URL_ENV} (e.g. {OPENAI_URL}, or "
                            f"http://127.0.0.1:8000/v1 for a local OpenAI-compatible server) and "
                            f"{API_KEY_ENV} if the server needs a key")
        if not base_url.startswith(("http://", "https://")):
            raise ChatError(f"{BASE_URL_ENV}={redact_url(base_url)!r} is not an http(s) URL, "
                            f"e.g. {OPENAI_URL}")
        self.base_url, self._query, self._userinfo = _split_url(base_url)
        self.model = model
        self.api_key = api_key
        self.temperature = temperature
        self.timeout = timeout
        self.retries = retries
        self.retry_delay = retry_delay

    @classmethod
    def from_env(cls, model="", **kwargs):
        """Build a client from OPENAI_BASE_URL / OPENAI_API_KEY / VR_DESCRIPTIONS_MODEL."""
        key = os.environ.get(API_KEY_ENV, "")
        base = os.environ.get(BASE_URL_ENV, "") or (OPENAI_URL if key else "")
        model = model or os.environ.get(MODEL_ENV, "") or DEFAULT_MODEL
        return cls(base, model=model, api_key=key, **kwargs)

    @property
    def url(self):
        return f"{self.base_url}/chat/completions" + (f"?{self._query}" if self._query else "")

    @property
    def display_url(self):
        """The endpoint as messages show it: query values hidden (credentials are not kept in it)."""
        return redact_url(self.url)

    def _post(self, body):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        elif self._userinfo:
            headers["Authorization"] = "Basic " + base64.b64encode(self._userinfo.encode()).decode()
        req = urllib.request.Request(self.url, data=json.dumps(body).encode("utf-8"),
                                     headers=headers, method="POST")
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            return resp.read()

    def complete(self, messages):
        """Send ``messages`` and return the answer text (may be empty).

        Transient failures (network errors, HTTP 408/409/429/5xx) are retried ``retries`` times
        with a growing delay; other HTTP errors fail at once with the status and body excerpt.
        """
        body = {"model": self.model, "messages": messages, "temperature": self.temperature}
        attempt = 0
        while True:
            try:
                raw = self._post(body)
                break
            except urllib.error.HTTPError as e:
                try:
                    detail = e.read().decode("utf-8", "replace")
                except Exception:  # the body is only for the message
                    detail = ""
                err = ChatError(f"HTTP {e.code} {e.reason} from {self.display_url}: {_excerpt(detail)}")
                if e.code not in RETRY_STATUS or attempt >= self.retries:
                    if e.code in (401, 403):
                        err = ChatError(f"{err} (check {API_KEY_ENV})")
                    elif e.code == 404:
                        err = ChatError(f"{err} (check {BASE_URL_ENV}: it should end with the API "
                                        f"root such as /v1, and the model name {self.model!r})")
                    raise err from None
            except (urllib.error.URLError, OSError) as e:
                if attempt >= self.retries:
                    raise ChatError(f"could not reach {self.display_url}: {getattr(e, 'reason', e)} "
                                    f"(check {BASE_URL_ENV} and that the server is running)") from None
            attempt += 1
            time.sleep(self.retry_delay * attempt)
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ChatError(f"unexpected answer from {self.display_url} (expected JSON with "
                            f"choices[0].message.content): {_excerpt(raw.decode('utf-8', 'replace'))}") from None
        return content or ""
