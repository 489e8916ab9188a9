#!/usr/bin/env python3
"""RSS of a running gateway per idle TCP connection (BENCHMARKS.md, "Idle connections").

Usage: idle_connections.py PID HOST:PORT [COUNT]

Opens COUNT (default 2000) TCP connections that never send a byte, reads the
gateway's RSS (VmRSS from /proc/PID/status) before, while they are open and
after they are closed, and prints one JSON line.
"""
import json
import socket
import sys
import time


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    pid = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 2000
    before = rss_kb(pid)
    conns = []
    for _ in range(count):
        s = socket.create_connection((host, int(port)))
        conns.append(s)
    time.sleep(2)  # let the gateway accept and set up every connection
    during = rss_kb(pid)
    # A connection the gateway already closed reads EOF (b"") at once; an open one times out.
    still_open = 0
    for s in conns:
        s.settimeout(0.001)
        try:
            if s.recv(1) != b"":
                still_open += 1
        except (socket.timeout, BlockingIOError):
            still_open += 1
        except OSError:
            pass
    for s in conns:
        s.close()
    time.sleep(2)
    after = rss_kb(pid)
    print(json.dumps({
        "connections": count,
        "still_open_after_2s": still_open,
        "rss_before_kb": before,
        "rss_open_kb": during,
        "rss_after_close_kb": after,
        "kb_per_connection": round((during - before) / count, 1),
    }))


if __name__ == "__main__":
    main()
