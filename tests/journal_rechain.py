#!/usr/bin/python3
"""journal_rechain.py JOURNAL — recompute every chain value of a cohort
journal in place (genesis, events, checkpoints, ticks), as someone who owns
the file and has edited it would.

This is the journal chain of include/cohort/journal.h written a second
time, independently, in Python.  The tests use it for two things: to check
that definition (a re-chained untouched journal keeps its digest), and to
show what docs/journal.md says a hash chain cannot do: a journal rebuilt by
its owner verifies, and only replay (which re-executes) or a digest kept
elsewhere (`cohort inspect --digest`) tells it from the original.
"""
import hashlib
import sqlite3
import struct
import sys


def le64(v):
    return struct.pack("<q", v)


def text(s):
    return (s if isinstance(s, bytes) else s.encode()) + b"\0"


def blob(v):
    return v if isinstance(v, bytes) else v.encode()


def main(path):
    c = sqlite3.connect(path)
    inputs = blob(c.execute("select value from meta where key='inputs'").fetchone()[0])
    # blobs are re-keyed by their (possibly edited) contents
    rows = c.execute("select sha256, bytes from blobs").fetchall()
    c.execute("delete from blobs")
    for _, b in rows:
        c.execute("insert or ignore into blobs values(?, ?)", (hashlib.sha256(blob(b)).digest(), blob(b)))
    keys = sorted(k for (k,) in c.execute("select sha256 from blobs"))
    h = hashlib.sha256(b"cohort-journal-3\0G" + le64(len(inputs)) + inputs + le64(len(keys)) + b"".join(keys))
    cur = h.digest()
    c.execute("update meta set value=? where key='genesis'", (cur.hex().encode(),))
    for tick, last_seq in c.execute("select tick, last_seq from ticks order by tick").fetchall():
        for seq, t, kind, src, dst, payload in c.execute(
                "select seq, tick, kind, source, target, payload from events "
                "where tick=? order by seq", (tick,)).fetchall():
            p = blob(payload)
            cur = hashlib.sha256(cur + b"E" + le64(seq) + le64(t) + text(kind) + text(src) + text(dst)
                                 + le64(len(p)) + p).digest()
            c.execute("update events set chain=? where seq=?", (cur, seq))
        n_ck = 0
        for n, agent, state in c.execute(
                "select n, agent, state from checkpoints where tick=? order by n", (tick,)).fetchall():
            n_ck += 1
            s = blob(state)
            cur = hashlib.sha256(cur + b"C" + le64(tick) + le64(n) + text(agent) + le64(len(s)) + s).digest()
            c.execute("update checkpoints set chain=? where tick=? and n=?", (cur, tick, n))
        cur = hashlib.sha256(cur + b"T" + le64(tick) + le64(last_seq) + le64(n_ck)).digest()
        c.execute("update ticks set chain=? where tick=?", (cur, tick))
    c.commit()
    print(cur.hex())


if __name__ == "__main__":
    main(sys.argv[1])
