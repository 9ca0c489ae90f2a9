"""A minimal client for any OpenAI-compatible chat completions endpoint (standard library only).

Configuration comes from the environment, as OpenAI's own clients do:
``OPENAI_BASE_URL`` (e.g. https://api.openai.com/v1 or a local server such as
http://127.0.0.1:8000/v1), ``OPENAI_API_KEY`` (sent as a Bearer token when set) and
``VR_DESCRIPTIONS_MODEL`` (default gpt-4o-mini). With only OPENAI_API_KEY set, the base URL
defaults to https://api.openai.com/v1.
"""
import json
import os
import time
import urllib.error
import urllib.request

BASE_URL_ENV = "OPENAI_BASE_URL"
API_KEY_ENV = "OPENAI_API_KEY"
MODEL_ENV = "VR_DESCRIPTIONS_MODEL"
DEFAULT_MODEL = "gpt-4o-mini"
OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = (408, 409, 429, 500, 502, 503, 504)


class ChatError(RuntimeError):
    """The endpoint could not give an answer (configuration, network, HTTP or format problem)."""


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
            raise ChatError(f"{BASE_URL_ENV}={base_url!r} is not an http(s) URL, "
                            f"e.g. {OPENAI_URL}")
        self.base_url = base_url.rstrip("/")
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
        return f"{self.base_url}/chat/completions"

    def _post(self, body):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
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
                err = ChatError(f"HTTP {e.code} {e.reason} from {self.url}: {_excerpt(detail)}")
                if e.code not in RETRY_STATUS or attempt >= self.retries:
                    if e.code in (401, 403):
                        err = ChatError(f"{err} (check {API_KEY_ENV})")
                    elif e.code == 404:
                        err = ChatError(f"{err} (check {BASE_URL_ENV}: it should end with the API "
                                        f"root such as /v1, and the model name {self.model!r})")
                    raise err from None
            except (urllib.error.URLError, OSError) as e:
                if attempt >= self.retries:
                    raise ChatError(f"could not reach {self.url}: {getattr(e, 'reason', e)} "
                                    f"(check {BASE_URL_ENV} and that the server is running)") from None
            attempt += 1
            time.sleep(self.retry_delay * attempt)
        try:
            data = json.loads(raw.decode("utf-8"))
            content = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ChatError(f"unexpected answer from {self.url} (expected JSON with "
                            f"choices[0].message.content): {_excerpt(raw.decode('utf-8', 'replace'))}") from None
        return content or ""
