"""A loopback stand-in for DuckDuckGo image search and the web servers its results point at.

It speaks what ddgs' DuckDuckGo images engine speaks: `GET /?q=...` answers a page holding the
`vqd` token, `GET /i.js?q=...&vqd=...&o=json` the JSON of one page of results (`results` with
`image`, `thumbnail`, `url`, `title`, `width`, `height`, `source`; `next`; `vqd`). The image
URLs point back at this server: photos of the category (a background colour per category, as
in tests/factories.py), plus what real results hold: broken files, exact duplicates under
other URLs, dead links and a web page. `extra` URLs are added to every result list (private
addresses, redirects), and `requests` records every path asked for.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import numpy as np

from tests.factories import draw

VQD = "4-211356711463925497081257914735432712512"


class Stub:
    """Serves on 127.0.0.1. `colours`: {word in the query: RGB}; `per_query`: good photos per
    result page; `side`: their size in pixels."""

    def __init__(self, colours: dict[str, tuple[int, int, int]], per_query: int = 12, side=48):
        self.colours, self.per_query, self.side = colours, per_query, side
        self.extra: list[str] = []
        self.requests: list[str] = []
        self.delay = 0.0  # seconds before each photo (Stop tests)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                stub.requests.append(self.path)
                stub.route(self)

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- what it serves ------------------------------------------------------------------------

    def colour(self, query: str) -> tuple[str, tuple[int, int, int]]:
        for word, rgb in self.colours.items():
            if word in query.lower():
                return word, rgb
        digest = hashlib.sha256(query.encode()).digest()
        return "other", (digest[0], digest[1], digest[2])

    def photo(self, word: str, i: int) -> bytes:
        _, rgb = self.colour(word)
        seed = int.from_bytes(hashlib.sha256(f"{word}/{i}".encode()).digest()[:4], "big")
        buf = io.BytesIO()
        draw(rgb, np.random.default_rng(seed), self.side).save(buf, "JPEG", quality=92)
        return buf.getvalue()

    def results(self, query: str, start: int) -> dict:
        word, _ = self.colour(query)
        base, w = self.url, quote(word)
        urls = []
        if start == 0:  # the bad ones early, where a search for a few photos meets them
            good = [f"{base}/img/{w}/{i}.jpg" for i in range(self.per_query)]
            bad = [f"{base}/dup/{w}/0.jpg", f"{base}/broken/{w}.jpg", f"{base}/missing/{w}.jpg"]
            bad += [f"{base}/page/{w}", f"{base}/dup/{w}/1.jpg"]  # dup/: the bytes of img/0
            urls = [*self.extra, *good[:1], *bad, *good[1:]]
        return {
            "ads": None,
            "next": f"i.js?q={quote(query)}&o=json&p=1&s={start + 100}&u=bing&f=,,,,,&l=us-en",
            "query": query,
            "queryEncoded": quote(query),
            "response_type": "places",
            "results": [
                {
                    "height": self.side,
                    "image": url,
                    "image_token": hashlib.sha1(url.encode()).hexdigest(),
                    "source": "Bing",
                    "thumbnail": f"https://tse1.mm.bing.net/th?id=OIP.{i}",
                    "thumbnail_token": hashlib.sha1(url.encode()).hexdigest()[:20],
                    "title": f"{query} {i}",
                    "url": f"https://example.com/{quote(query)}/{i}",
                    "width": self.side,
                }
                for i, url in enumerate(urls)
            ],
            "vqd": {quote(query): VQD},
        }

    def route(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if url.path == "/":
            page = f'<html><script>vqd="{VQD}";</script>{q.get("q", "")}</html>'
            return send(h, 200, page.encode(), "text/html")
        if url.path == "/i.js":
            if q.get("vqd") != VQD:
                return send(h, 403, b"{}", "application/json")
            body = json.dumps(self.results(q.get("q", ""), int(q.get("s", 0)))).encode()
            return send(h, 200, body, "application/json")
        if parts[0] in ("img", "dup") and len(parts) == 3:
            if self.delay:
                threading.Event().wait(self.delay)
            i = 0 if parts[0] == "dup" else int(parts[2].split(".")[0])
            return send(h, 200, self.photo(parts[1], i), "image/jpeg")
        if parts[0] == "broken":
            return send(h, 200, b"\xff\xd8\xff\xe0 this is not really a JPEG", "image/jpeg")
        if parts[0] == "page":
            return send(h, 200, b"<html>a web page, not a photo</html>", "text/html")
        if parts[0] == "redirect":  # /redirect?to=URL
            return send(h, 302, b"", "text/plain", {"Location": q["to"]})
        if parts[0] == "bomb.png":
            return send(h, 200, png_bomb(20000, 20000), "image/png")
        if parts[0] == "huge.jpg":  # says it is bigger than any cap
            return send(h, 200, b"", "image/jpeg", {"Content-Length": str(10**10)}, body=False)
        return send(h, 404, b"not found", "text/plain")


class Quiet(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # a client that hangs up early (a stopped search) is no error here


def send(h, status: int, data: bytes, kind: str, headers=None, body: bool = True) -> None:
    h.send_response(status)
    h.send_header("Content-Type", kind)
    headers = {"Content-Length": str(len(data)), **(headers or {})}
    for key, value in headers.items():
        h.send_header(key, value)
    h.end_headers()
    if body:
        h.wfile.write(data)


def png_bomb(w: int, h: int) -> bytes:
    """A small PNG whose header claims w×h pixels (a decompression bomb)."""
    comp = zlib.compressobj(1)
    rows = b"\0" * ((w + 1) * 250)
    data = b"".join(comp.compress(rows) for _ in range(h // 250)) + comp.flush()

    def chunk(tag: bytes, part: bytes) -> bytes:
        size = len(part).to_bytes(4, "big")
        return size + tag + part + zlib.crc32(tag + part).to_bytes(4, "big")

    ihdr = w.to_bytes(4, "big") + h.to_bytes(4, "big") + bytes([8, 0, 0, 0, 0])
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b"")
