#!/usr/bin/env python3
"""flood.py — abuse a running `cohort ... --ui` server for as long as a
process lives, so that a test can check the run's digest did not change.

  flood.py HOST PORT PID [--seconds S]

Until process PID exits (or S seconds pass), cycles through: garbage bytes,
a request line with truncated headers then a hang-up, headers far over the
server's limit, HTTP/0.9 and bogus methods, bad WebSocket handshakes (no
key, wrong version, foreign Origin, upgrade on a non-WebSocket path), and
WebSocket connections that are accepted and then dropped mid-frame (a frame
header promising more payload than is sent, a masked half-frame, an
oversized length, an unmasked client frame, a text frame that is not a
control).  A few sockets are kept open without sending anything (slow
clients).  No valid control is ever sent: the run must be unaffected.
Prints the number of attempts of each kind; exit 0 when at least one round
completed, 1 otherwise.
"""
import base64
import os
import socket
import struct
import sys
import time


def connect(host, port):
    s = socket.create_connection((host, port), timeout=2)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def send_close(host, port, data, read=False):
    s = connect(host, port)
    try:
        s.sendall(data)
        if read:
            try:
                s.recv(4096)
            except OSError:
                pass
    finally:
        s.close()


def ws_handshake(host, port, extra=b"", key=True, version=b"13", path=b"/ws"):
    k = base64.b64encode(os.urandom(16))
    req = (b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1:" + str(port).encode() +
           b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
           (b"Sec-WebSocket-Key: " + k + b"\r\n" if key else b"") +
           b"Sec-WebSocket-Version: " + version + b"\r\n" + extra + b"\r\n")
    return req


def ws_open(host, port):
    """A real WebSocket connection; returns the socket after the 101."""
    s = connect(host, port)
    s.sendall(ws_handshake(host, port))
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(4096)
        if not chunk:
            raise OSError("closed during handshake")
        buf += chunk
    if not buf.startswith(b"HTTP/1.1 101"):
        raise OSError("no 101: %r" % buf[:40])
    return s


def masked(opcode, payload, fin=True, claim=None):
    mask = os.urandom(4)
    n = len(payload) if claim is None else claim
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def main():
    host, port, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    seconds = 600.0
    if len(sys.argv) > 5 and sys.argv[4] == "--seconds":
        seconds = float(sys.argv[5])
    hp = ("127.0.0.1:%d" % port).encode()
    http = [
        ("garbage", lambda: send_close(host, port, os.urandom(3000))),
        ("nul-bytes", lambda: send_close(host, port, b"\x00" * 512 + b"\r\n\r\n", read=True)),
        ("truncated-headers", lambda: send_close(
            host, port, b"GET /api/snapshot HTTP/1.1\r\nHost: " + hp + b"\r\nX-Half: abc")),
        ("truncated-request-line", lambda: send_close(host, port, b"GET /metr")),
        ("oversized-headers", lambda: send_close(
            host, port, b"GET / HTTP/1.1\r\nHost: " + hp + b"\r\nX-Big: " + b"a" * 40000 +
            b"\r\n\r\n", read=True)),
        ("many-headers", lambda: send_close(
            host, port, b"GET / HTTP/1.1\r\nHost: " + hp + b"\r\n" +
            b"".join(b"X-%d: y\r\n" % i for i in range(2000)) + b"\r\n", read=True)),
        ("bogus-method", lambda: send_close(
            host, port, b"BREW /coffee HTCPCP/1.0\r\n\r\n", read=True)),
        ("http09", lambda: send_close(host, port, b"GET /\r\n\r\n", read=True)),
        ("bad-content-length", lambda: send_close(
            host, port, b"POST /api/control HTTP/1.1\r\nHost: " + hp +
            b"\r\nContent-Type: application/json\r\nContent-Length: 999999\r\n\r\n{\"con", read=False)),
        ("negative-content-length", lambda: send_close(
            host, port, b"POST /api/control HTTP/1.1\r\nHost: " + hp +
            b"\r\nContent-Length: -5\r\n\r\n", read=True)),
        ("bad-control-json", lambda: send_close(
            host, port, b"POST /api/control HTTP/1.1\r\nHost: " + hp +
            b"\r\nContent-Type: application/json\r\nContent-Length: 18\r\n\r\n{\"control\":\"boom\"}", read=True)),
        ("ws-no-key", lambda: send_close(host, port, ws_handshake(host, port, key=False), read=True)),
        ("ws-bad-version", lambda: send_close(host, port, ws_handshake(host, port, version=b"7"), read=True)),
        ("ws-foreign-origin", lambda: send_close(
            host, port, ws_handshake(host, port, extra=b"Origin: http://evil.example\r\n"), read=True)),
        ("ws-wrong-path", lambda: send_close(
            host, port, ws_handshake(host, port, path=b"/api/snapshot"), read=True)),
        ("ws-truncated-handshake", lambda: send_close(host, port, ws_handshake(host, port)[:60])),
    ]

    def ws_mid(payload):
        def go():
            s = ws_open(host, port)
            try:
                s.sendall(payload)
            finally:
                s.close()
        return go

    ws = [
        ("ws-short-payload", ws_mid(masked(1, b'{"control":"pa', claim=100))),
        ("ws-half-header", ws_mid(bytes([0x81, 0xFE]))),
        ("ws-huge-length", ws_mid(masked(1, b"x" * 10, claim=1 << 40))),
        ("ws-unmasked", ws_mid(bytes([0x81, 5]) + b"hello")),
        ("ws-not-a-control", ws_mid(masked(1, b'{"control":"explode"}') + masked(1, b"\xff\xfe"))),
        ("ws-fragment-then-drop", ws_mid(masked(1, b'{"contr', fin=False))),
        ("ws-bad-opcode", ws_mid(masked(0x3, b"??"))),
        ("ws-open-then-vanish", ws_mid(b"")),
    ]
    counts = {}
    errors = {}
    times = {}
    idle = []
    rounds = 0
    end = time.time() + seconds
    alive = lambda: os.path.exists("/proc/%d" % pid) and not open(
        "/proc/%d/stat" % pid).read().split(") ")[1].startswith("Z")
    # at least one whole round, even if the run was quicker than this
    # script's start (the server lingers after the run): the caller's check
    # that the flood ran must not depend on how fast either side is
    while rounds == 0 or (time.time() < end and alive()):
        for name, fn in http + ws:
            t0 = time.time()
            try:
                fn()
                counts[name] = counts.get(name, 0) + 1
            except OSError as e:
                errors[name] = errors.get(name, 0) + 1
                counts[name] = counts.get(name, 0) + 1
            times[name] = times.get(name, 0.0) + time.time() - t0
        # slow clients: a handful of sockets that never finish their request
        if len(idle) < 8:
            try:
                s = connect(host, port)
                s.sendall(b"GET / HTTP/1.1\r\n")
                idle.append(s)
            except OSError:
                pass
        rounds += 1
    for s in idle:
        s.close()
    total = sum(counts.values())
    print("flood: %d rounds, %d attempts (%s); socket errors: %s" % (
        rounds, total, ", ".join("%s %d" % kv for kv in sorted(counts.items())),
        ", ".join("%s %d" % kv for kv in sorted(errors.items())) or "none"))
    slow = sorted(times.items(), key=lambda kv: -kv[1])[:3]
    print("flood: slowest kinds: %s" % ", ".join("%s %.2f s" % kv for kv in slow))
    return 0 if rounds > 0 else 1


if __name__ == "__main__":
    sys.exit(main())
