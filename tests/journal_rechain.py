#!/usr/bin/python3
"""journal_rechain.py JOURNAL — recompute every chain value of a cohort
journal in place (genesis, each tick's events record, checkpoints, ticks),
as someone who owns the file and has edited it would.

This is the journal chain of include/cohort/journal.h (format 5) written a
second time, independently, in Python.  The tests use it for two things: to
check that definition (a re-chained untouched journal keeps its digest), and
to show what docs/journal.md says a hash chain cannot do: a journal rebuilt
by its owner verifies, and only replay (which re-executes) or a digest kept
elsewhere (`cohort inspect --digest`) tells it from the original.

As a module it also reads and writes a tick's events (format 5 keeps them
as one blob per tick, ticks.events, compressed as one zstd frame: read and
written here with python3-zstandard, not with cohort's code), so that tests
can look at or edit one event with plain Python:
    events(conn)                      -> [Event], every event in seq order
    set_event_payload(conn, seq, b)   rewrites one event's payload (and
                                      leaves every chain value stale)
"""
import collections
import hashlib
import sqlite3
import struct
import sys

import zstandard

Event = collections.namedtuple("Event", "seq tick kind source target payload wall_us")


def le64(v):
    return struct.pack("<q", v)


def text(s):
    return (s if isinstance(s, bytes) else s.encode()) + b"\0"


def blob(v):
    return v if isinstance(v, bytes) else v.encode()


def uvarint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def read_uvarint(b, i):
    x, shift = 0, 0
    while True:
        c = b[i]
        i += 1
        x |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return x, i


def unpack(stored):
    """ticks.events as stored -> the events blob the chain hashes."""
    return zstandard.ZstdDecompressor().decompress(blob(stored))


def pack(ev_blob):
    """The events blob -> ticks.events (one frame that states its size)."""
    return zstandard.ZstdCompressor(level=1, write_content_size=True).compress(ev_blob)


def decode_tick(tick, last_seq, n, ev_blob, walls):
    """The events of one ticks row."""
    ev_blob, walls = unpack(ev_blob), blob(walls)
    out, i, w, wall = [], 0, 0, 0
    for k in range(n):
        strs = []
        for _ in range(3):
            z = ev_blob.index(b"\0", i)
            strs.append(ev_blob[i:z].decode())
            i = z + 1
        plen, i = read_uvarint(ev_blob, i)
        payload = ev_blob[i:i + plen]
        i += plen
        zz, w = read_uvarint(walls, w)
        wall += (zz >> 1) ^ -(zz & 1)
        out.append(Event(last_seq - n + 1 + k, tick, strs[0], strs[1], strs[2], payload, wall))
    return out


def encode_events(evs):
    return b"".join(text(e.kind) + text(e.source) + text(e.target) + uvarint(len(e.payload)) + e.payload
                    for e in evs)


def events(c):
    out = []
    for row in c.execute("select tick, last_seq, n_events, events, walls from ticks order by tick"):
        out.extend(decode_tick(*row))
    return out


def set_event_payload(c, seq, payload):
    (tick,) = c.execute("select tick from ticks where last_seq >= ? and last_seq - n_events < ?",
                        (seq, seq)).fetchone()
    row = c.execute("select tick, last_seq, n_events, events, walls from ticks where tick=?",
                    (tick,)).fetchone()
    evs = [e._replace(payload=blob(payload)) if e.seq == seq else e for e in decode_tick(*row)]
    c.execute("update ticks set events=? where tick=?", (pack(encode_events(evs)), tick))


def main(path):
    c = sqlite3.connect(path)
    inputs = blob(c.execute("select value from meta where key='inputs'").fetchone()[0])
    # blobs are re-keyed by their (possibly edited) contents
    rows = c.execute("select sha256, bytes from blobs").fetchall()
    c.execute("delete from blobs")
    for _, b in rows:
        c.execute("insert or ignore into blobs values(?, ?)", (hashlib.sha256(blob(b)).digest(), blob(b)))
    keys = sorted(k for (k,) in c.execute("select sha256 from blobs"))
    h = hashlib.sha256(b"cohort-journal-5\0G" + le64(len(inputs)) + inputs + le64(len(keys)) + b"".join(keys))
    cur = h.digest()
    c.execute("update meta set value=? where key='genesis'", (cur.hex().encode(),))
    prev_seq = 0
    for tick, last_seq, n, ev_blob in c.execute(
            "select tick, last_seq, n_events, events from ticks order by tick").fetchall():
        e = unpack(ev_blob)
        cur = hashlib.sha256(cur + b"E" + le64(tick) + le64(prev_seq + 1) + le64(n) + le64(len(e)) + e).digest()
        c.execute("update ticks set events_chain=? where tick=?", (cur, tick))
        prev_seq = last_seq
        n_ck = 0
        for n_, agent, state in c.execute(
                "select n, agent, state from checkpoints where tick=? order by n", (tick,)).fetchall():
            n_ck += 1
            s = blob(state)
            cur = hashlib.sha256(cur + b"C" + le64(tick) + le64(n_) + text(agent) + le64(len(s)) + s).digest()
            c.execute("update checkpoints set chain=? where tick=? and n=?", (cur, tick, n_))
        cur = hashlib.sha256(cur + b"T" + le64(tick) + le64(last_seq) + le64(n_ck)).digest()
        c.execute("update ticks set chain=? where tick=?", (cur, tick))
    c.commit()
    print(cur.hex())


if __name__ == "__main__":
    main(sys.argv[1])
