"""A scriptable HTTP server on 127.0.0.1 for resolver tests.

Each route maps a path to a list of actions; the n-th request to that path
plays the n-th action (the last one repeats). Every request is recorded.
"""

import http.server
import io
import os
import socket
import ssl
import subprocess
import tarfile
import threading
import time
from dataclasses import dataclass


@dataclass
class Serve:
    body: bytes
    content_length: int | None = None  # None: the true length
    chunk_delay: float = 0.0  # seconds between 64 KiB chunks
    stop_after: int | None = None  # close the connection after N bytes
    content_type: str = "application/octet-stream"


@dataclass
class Status:
    code: int
    headers: dict | None = None


@dataclass
class Redirect:
    location: str
    code: int = 302


@dataclass
class Stall:
    seconds: float
    partial: bytes = b""
    content_length: int = 10**6


@dataclass
class Drip:
    """One byte every `delay` seconds: never stalls long enough for a read
    timeout. In the body (`in_headers=False`) or in the header lines."""

    delay: float
    in_headers: bool = False
    max_seconds: float = 20.0  # the server gives up by itself


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        server = self.server
        path, _, query = self.path.partition("?")
        with server.lock:
            server.requests.append((path, query, dict(self.headers)))
            actions = server.routes.get(path)
            count = server.counts.get(path, 0)
            server.counts[path] = count + 1
        if not actions:
            self.send_error(404)
            return
        action = actions[min(count, len(actions) - 1)]
        getattr(self, "_" + type(action).__name__.lower())(action)

    def _serve(self, a):
        length = len(a.body) if a.content_length is None else a.content_length
        self.send_response(200)
        self.send_header("Content-Type", a.content_type)
        self.send_header("Content-Length", str(length))
        self.end_headers()
        body = a.body if a.stop_after is None else a.body[: a.stop_after]
        try:
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i : i + 65536])
                self.wfile.flush()
                if a.chunk_delay:
                    time.sleep(a.chunk_delay)
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True

    def _status(self, a):
        self.send_response(a.code)
        for key, value in (a.headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _redirect(self, a):
        self.send_response(a.code)
        self.send_header("Location", a.location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, a):
        end = time.monotonic() + a.max_seconds
        try:
            if a.in_headers:
                self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            else:
                self.send_response(200)
                self.send_header("Content-Length", str(10**9))
                self.end_headers()
                self.wfile.write(b"\x1f\x8b")
            self.wfile.flush()
            while time.monotonic() < end:
                time.sleep(a.delay)
                self.wfile.write(b"a" if a.in_headers else b"\0")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True

    def _stall(self, a):
        self.send_response(200)
        self.send_header("Content-Length", str(a.content_length))
        self.end_headers()
        try:
            self.wfile.write(a.partial)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return
        time.sleep(a.seconds)
        self.close_connection = True


class ScriptedServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls=None):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.scheme = "http"
        if tls is not None:  # (certificate file, key file)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.socket = context.wrap_socket(self.socket, server_side=True)
            self.scheme = "https"
        self.routes = {}
        self.counts = {}
        self.requests = []
        self.lock = threading.Lock()
        self._thread = threading.Thread(
            target=self.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()

    @property
    def base(self):
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}"

    def route(self, path, *actions):
        with self.lock:
            self.routes[path] = list(actions)
            self.counts[path] = 0
        return f"{self.base}{path}"

    def hits(self, path):
        with self.lock:
            return sum(1 for p, _, _ in self.requests if p == path)

    def stop(self):
        self.shutdown()
        self.server_close()


def tar_gz_of(folder, prefix="."):
    """A .tar.gz of `folder`'s contents, as TF Hub serves them."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.add(folder, arcname=prefix)
    return buffer.getvalue()


def crafted_tar_gz(members):
    """A .tar.gz from (TarInfo-kwargs, data-or-None) pairs."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for fields, data in members:
            fields = dict(fields)
            info = tarfile.TarInfo(fields.pop("name"))
            for key, value in fields.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
            else:
                archive.addfile(info)
    return buffer.getvalue()


def saved_model_members(folder):
    """(fields, data) pairs for every file of a SavedModel folder."""
    members = []
    for root, _, files in os.walk(folder):
        for name in sorted(files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, folder)
            with open(full, "rb") as f:
                members.append(({"name": rel}, f.read()))
    return members


def self_signed_certificate(folder):
    """(certificate, key) files for 127.0.0.1, made with the openssl tool."""
    cert, key = (
        os.path.join(folder, "cert.pem"),
        os.path.join(folder, "key.pem"),
    )
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class DripSocketServer:
    """A bare TCP server that drips one byte every `delay` seconds to each
    client, whatever it sends: a TLS handshake that never completes."""

    def __init__(self, delay, max_seconds=20.0):
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._delay = delay
        self._max = max_seconds
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(
                target=self._drip, args=(conn,), daemon=True
            ).start()

    def _drip(self, conn):
        end = time.monotonic() + self._max
        with conn:
            # A TLS handshake record header announcing 16 KiB, then bytes.
            payload = b"\x16\x03\x03\x40\x00" + b"\x02" * 20000
            for byte in payload:
                if time.monotonic() > end:
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return
                time.sleep(self._delay)

    def stop(self):
        self._listener.close()
