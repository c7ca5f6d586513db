"""A loopback HTTP file server for download tests: Range requests, HEAD, redirects, fault injection.

    with FileServer({"/host/a.bin": b"..."}) as srv:
        srv.fault("/host/a.bin", "drop:100")   # next GET: full headers, 100 bytes, then the socket closes
        srv.url                                  # http://127.0.0.1:PORT  (usable as a --mirror)
        srv.requests                             # [Req(method, path, headers)] in arrival order

Faults are consumed one per request, in order: "drop:N" (send N body bytes then close), "status:CODE"
(reply CODE with a tiny body; 429/503 carry Retry-After: 0), "wrong" (serve different bytes of the same
length), "redirect:URL" (302 to URL), "norange" (ignore the Range header, reply 200 in full).
Only 127.0.0.1 is ever bound; nothing leaves the machine.
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Req:
    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)

    def header(self, name: str) -> str | None:
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


class FileServer:
    def __init__(self, files: dict[str, bytes] | None = None):
        self.files: dict[str, bytes] = dict(files or {})
        self.faults: dict[str, deque[str]] = defaultdict(deque)
        self.requests: list[Req] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_HEAD(self) -> None:
                self._serve(head=True)

            def do_GET(self) -> None:
                self._serve(head=False)

            def _reply(
                self, code: int, body: bytes, headers: dict[str, str] | None = None, head: bool = False
            ) -> None:
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def _serve(self, head: bool) -> None:
                path = self.path.split("?", 1)[0]
                with server._lock:
                    server.requests.append(Req(self.command, self.path, dict(self.headers.items())))
                    fault = server.faults[path].popleft() if server.faults[path] and not head else None
                    body = server.files.get(path)
                if fault and fault.startswith("status:"):
                    code = int(fault.split(":", 1)[1])
                    extra = {"Retry-After": "0"} if code in (429, 503) else {}
                    self._reply(code, b"fault", extra, head)
                    return
                if fault and fault.startswith("redirect:"):
                    self._reply(302, b"", {"Location": fault.split(":", 1)[1]}, head)
                    return
                if body is None:
                    self._reply(404, b"not found", None, head)
                    return
                if fault == "wrong":
                    body = bytes((b ^ 0xFF) for b in body)
                start = 0
                rng = self.headers.get("Range")
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng or "")
                if m and fault != "norange":
                    start = int(m.group(1))
                    end = int(m.group(2)) if m.group(2) else len(body) - 1
                    if start >= len(body):
                        self._reply(416, b"", {"Content-Range": f"bytes */{len(body)}"}, head)
                        return
                    chunk = body[start : end + 1]
                    headers = {"Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(body)}"}
                    code = 206
                else:
                    chunk, headers, code = body, {}, 200
                headers["Accept-Ranges"] = "bytes"
                if fault and fault.startswith("drop:"):
                    n = int(fault.split(":", 1)[1])
                    self.send_response(code)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(chunk)))
                    self.end_headers()
                    self.wfile.write(chunk[:n])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._reply(code, chunk, headers, head)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="test-http", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def fault(self, path: str, *faults: str) -> None:
        with self._lock:
            self.faults[path].extend(faults)

    def gets(self, path: str | None = None) -> list[Req]:
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and (path is None or r.path == path)]

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
