"""Helpers for tests/test_data.py: a local HTTP mirror and small MNIST-format data sets."""

import hashlib
import http.server
import socket
import threading

import numpy as np

from minicnn.data import MNIST_FILES, write_idx


def small_mnist_files(folder, *, n_train=30, n_test=10, seed=0):
    """Write the four MNIST-named IDX files (gzip) of a tiny random set; return {name: (array, bytes)}."""
    rng = np.random.default_rng(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test)):
        images_name, labels_name = MNIST_FILES[split]
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        for name, array in ((images_name, images), (labels_name, labels)):
            path = folder / name
            write_idx(path, array)
            written[name] = (array, path.read_bytes())
    return written


def md5_of(payload):
    return hashlib.md5(payload).hexdigest()


class LocalMirror:
    """An HTTP server on 127.0.0.1 in a daemon thread, serving ``routes`` {url path: bytes}.

    A path in ``short`` announces more bytes (Content-Length) than it sends,
    then closes the connection. Unknown paths answer 404. ``requests`` lists
    every requested path, in order.
    """

    def __init__(self):
        self.routes = {}
        self.short = set()
        self.requests = []
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests.append(self.path)
                body = mirror.routes.get(self.path)
                if body is None:
                    self.send_error(404, "not here")
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                announced = len(body) * 2 if self.path in mirror.short else len(body)
                self.send_header("Content-Length", str(announced))
                self.end_headers()
                self.wfile.write(body)
                self.wfile.flush()
                self.close_connection = True

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def unreachable_url():
    """A URL on 127.0.0.1 whose port has just been closed (connection refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/mnist/"
