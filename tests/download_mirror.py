"""A local HTTP mirror (127.0.0.1 only) for the download tests, and datasets.download's command run
in-process (shared here, not imported from another test module; the ``mirror`` fixture is in conftest.py)."""
import hashlib
import http.server
import io
import os
import threading
from contextlib import redirect_stdout


class Mirror:
    """A threaded HTTP server for one folder, with Range support, a request log and optional truncation."""

    def __init__(self, folder):
        self.folder = str(folder)
        self.requests = []  # (path, Range header or None)
        self.truncate_once = set()  # paths whose next response stops half-way
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                path = self.path.split("?")[0].lstrip("/")
                mirror.requests.append((path, self.headers.get("Range")))
                file = os.path.join(mirror.folder, path)
                if not os.path.isfile(file):
                    self.send_error(404)
                    return
                with open(file, "rb") as f:
                    data = f.read()
                start, status = 0, 200
                ranged = self.headers.get("Range")
                if ranged and ranged.startswith("bytes="):
                    start = int(ranged[6:].split("-")[0])
                    if start >= len(data):
                        self.send_error(416)
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                if path in mirror.truncate_once:
                    mirror.truncate_once.discard(path)
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def put(self, name, filename, data):
        path = os.path.join(self.folder, name, filename)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return hashlib.md5(data).hexdigest()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_download(*args):
    from datasets.download import main

    out = io.StringIO()
    with redirect_stdout(out):
        rc = main(list(args))
    return rc, out.getvalue()

