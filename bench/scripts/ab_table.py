#!/usr/bin/env python3
"""ab.sh's lines (standard input or files) as one row each: the floor, the server's and
PostgreSQL's CPU a request (µs; /proc ticks are 10 ms), throughput, p50, p99, errors."""
import fileinput
import re

LINE = re.compile(r"^(\S+) floor=\[(\d+).*?srv_ticks=(\d+) pg_ticks=(\d+) :: (\d+) ok, "
                  r"(\d+) errors, (\d+) req/s, p50 ([\d.]+) ms, p99 ([\d.]+) ms")
for line in fileinput.input():
    m = LINE.search(line)
    if not m:
        continue
    label, floor, srv, pg, n, errors, rps, p50, p99 = m.groups()
    n = int(n)
    print(f"{label:14} floor {floor:>6}  server {int(srv) * 1e4 / n:6.1f} µs  "
          f"postgres {int(pg) * 1e4 / n:6.1f} µs  {rps:>6}/s  p50 {p50:>6}  p99 {p99:>6}  "
          f"errors {errors}")
