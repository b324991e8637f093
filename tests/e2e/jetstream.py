"""Reading a JetStream stream's messages from a test, through the broker's
own API (`$JS.API.STREAM.MSG.GET`) over the plain NATS protocol: no client
library is needed for a handful of request-replies."""

from __future__ import annotations

import base64
import json
import socket
import uuid
from urllib.parse import urlparse

STREAMS = ("MEMSY_EVENTS", "MEMSY_EXTRACTED", "MEMSY_EMBEDDED", "MEMSY_DLQ")


class JetStream:
    def __init__(self, nats_url: str):
        u = urlparse(nats_url)
        self.sock = socket.create_connection((u.hostname, u.port or 4222), timeout=10)
        self.buf = b""
        self._line()  # INFO
        self.inbox = f"_INBOX.{uuid.uuid4().hex}"
        self.sock.sendall(b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n')
        self.sock.sendall(f"SUB {self.inbox} 1\r\n".encode())

    def close(self) -> None:
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("nats-server closed the connection")
        self.buf += chunk

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            self._fill()
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def request(self, subject: str, body: dict) -> dict:
        payload = json.dumps(body).encode()
        self.sock.sendall(f"PUB {subject} {self.inbox} {len(payload)}\r\n".encode() + payload + b"\r\n")
        while True:
            line = self._line()
            if line.startswith(b"PING"):
                self.sock.sendall(b"PONG\r\n")
            elif line.startswith(b"MSG "):
                return json.loads(self._take(int(line.split()[-1])))
            elif line.startswith(b"HMSG "):
                parts = line.split()
                raw = self._take(int(parts[-1]))
                return json.loads(raw[int(parts[-2]):])
            elif line.startswith(b"-ERR"):
                raise RuntimeError(line.decode())

    def messages(self, stream: str, subjects: str = ">"):
        """Every message of `stream` on `subjects`, oldest first, as
        (subject, payload bytes)."""
        seq = 1
        while True:
            r = self.request(f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq, "next_by_subj": subjects})
            if "error" in r:
                assert r["error"].get("code") == 404, r
                return
            m = r["message"]
            yield m["subject"], base64.b64decode(m.get("data", ""))
            seq = m["seq"] + 1

    def holding(self, needle: str) -> list[tuple[str, str]]:
        """(stream, subject) of every message in memsy's streams whose body
        holds `needle` (an id as protobuf writes it: its UTF-8 bytes)."""
        raw = needle.encode()
        return [(s, subj) for s in STREAMS for subj, data in self.messages(s) if raw in data]
