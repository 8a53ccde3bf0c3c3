"""OpenSlide peer of the `compare` suite's region benchmark (Debian `python3-openslide`,
`python3-pil`): a long-lived worker so the harness can interleave it with MedStream.

Reads one JSON command per line on stdin, answers one JSON line on stdout:
  {"op": "info"}                                -> {"openslide": "3.4.1", "pil": "9.4.0"}
  {"op": "regions", "slide": PATH, "format": "png"|"jpg"|"none", "quality": 80,
   "threads": N, "regions": [[x, y, w, h], ...]}  (level 0, level-0 coordinates)
      -> {"seconds": wall, "latencies_ms": [...], "bytes": total encoded bytes}
  {"op": "serve"}                               -> {"port": N}
      starts a minimal HTTP/1.1 server (http.server, a thread per connection) on 127.0.0.1:N
      answering GET /region?slide=PATH&x=&y=&width=&height=&format=png|jpg&quality= with the
      encoded region: the same work behind the same kind of HTTP hop as MedStream's /region.

Each region is what MedStream's /slides/{id}/region does: read_region at level 0 (RGBA),
flattened to RGB (the slides here are opaque, so that is a conversion, not a composite), then
encoded with PIL: PNG with zlib level 3 (MedStream: libvips/libspng level 3, no filtering), or
JPEG at `quality` with 4:2:0 chroma subsampling (as MedStream). `threads` worker threads take
regions from a shared queue (ctypes and PIL release the GIL, so they run in parallel).
Slides stay open between commands, as MedStream keeps them open.
"""

import http.server
import io
import json
import sys
import threading
import time
import urllib.parse

import openslide

try:
    from PIL import Image  # noqa: F401  (PIL is what openslide-python returns images as)

    import PIL

    PIL_VERSION = PIL.__version__
except ImportError:  # pragma: no cover
    PIL_VERSION = None

slides = {}
slides_lock = threading.Lock()


def slide(path):
    with slides_lock:
        if path not in slides:
            slides[path] = openslide.OpenSlide(path)
        return slides[path]


def encoded_region(s, region, fmt, quality):
    x, y, w, h = region
    image = s.read_region((x, y), 0, (w, h)).convert("RGB")
    if fmt == "none":
        return image.tobytes()
    out = io.BytesIO()
    if fmt == "png":
        image.save(out, "PNG", compress_level=3)
    else:
        image.save(out, "JPEG", quality=quality, subsampling=2)
    return out.getvalue()


def one_region(s, region, fmt, quality):
    return len(encoded_region(s, region, fmt, quality))


class RegionHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as MedStream's clients use
    # TCP_NODELAY as Node's http server: else the body, written after the headers, waits out the
    # client's delayed ACK (~40 ms per response).
    disable_nagle_algorithm = True

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(url.query))
        try:
            if url.path != "/region":
                raise ValueError("unknown path " + url.path)
            region = [int(q["x"]), int(q["y"]), int(q["width"]), int(q["height"])]
            fmt = q.get("format", "png")
            body = encoded_region(slide(q["slide"]), region, fmt, int(q.get("quality", 80)))
            status, ctype = 200, "image/png" if fmt == "png" else "image/jpeg"
        except Exception as e:  # the bench checks the status
            status, ctype, body = 400, "text/plain", repr(e).encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # no access log (MedStream's bench server logs at info)
        pass


def serve():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RegionHandler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return {"port": server.server_address[1]}


def regions(command):
    s = slide(command["slide"])
    fmt = command.get("format", "png")
    quality = int(command.get("quality", 80))
    todo = list(command["regions"])
    latencies = [0.0] * len(todo)
    total = [0]
    lock = threading.Lock()
    nxt = [0]

    def work():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            if i >= len(todo):
                return
            t0 = time.perf_counter()
            n = one_region(s, todo[i], fmt, quality)
            latencies[i] = (time.perf_counter() - t0) * 1000
            with lock:
                total[0] += n

    started = time.perf_counter()
    threads = [threading.Thread(target=work) for _ in range(max(1, int(command.get("threads", 1))))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"seconds": time.perf_counter() - started, "latencies_ms": latencies, "bytes": total[0]}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            command = json.loads(line)
            if command["op"] == "info":
                reply = {"openslide": openslide.__library_version__, "pil": PIL_VERSION}
            elif command["op"] == "regions":
                reply = regions(command)
            elif command["op"] == "serve":
                reply = serve()
            else:
                reply = {"error": "unknown op " + str(command["op"])}
        except Exception as e:  # the harness reports it and skips the peer's rows
            reply = {"error": repr(e)}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
