#!/usr/bin/env python3
"""Request lists for `confab-bench load` (NUL-separated arguments, read by ab.sh) from the
benchmark's dataset: `confab-bench dataset > ds.ndjson; load_args.py ds.ndjson OUTDIR`.

Writes get.nul (GET a conversation), page.nul (its newest 50 messages, native), cold.nul (the
"1,024 different words" row's searches), app.nul (append one ~80-byte message), each over the
same 4,000 conversations in a seeded order.
"""
import json
import os
import random
import sys

# bench/src/dataset.rs: SYLLABLES and word(rank), the vocabulary's words by Zipf rank.
SYLLABLES = ("ka lo mi nu pa ro si tu va zo bi du fa go hi ju ko la mo ni "
             "po ra so ti vu za bo da fi gu ha jo ku li ma no pi ru sa to").split()


def word(rank):
    n = len(SYLLABLES)
    if rank < n:
        digits, r = 1, rank
    elif rank < n + n * n:
        digits, r = 2, rank - n
    else:
        digits, r = 3, rank - n - n * n
    parts = []
    for _ in range(digits):
        parts.append(SYLLABLES[r % n])
        r //= n
    return "".join(reversed(parts))


def write(path, args):
    with open(path, "wb") as f:
        f.write(b"\0".join(a.encode() for a in args) + b"\0")


def main(dataset, out):
    ids = []
    with open(dataset) as f:
        for line in f:
            i = line.index('"id":"') + 6
            ids.append(line[i:i + 36])
    rng = random.Random(7)
    rng.shuffle(ids)
    ids = ids[:4000]
    os.makedirs(out, exist_ok=True)
    paths = lambda fmt: [a for c in ids for a in ("--path", fmt.format(c))]
    write(os.path.join(out, "get.nul"), paths("/v1/conversations/{}"))
    write(os.path.join(out, "page.nul"), paths("/v1/conversations/{}/messages?limit=50"))
    write(os.path.join(out, "cold.nul"),
          [a for r in range(1024) for a in ("--path", f"/v1/search?q={word(r)}")])
    appends = []
    for c in ids:
        text = " ".join(word(rng.randrange(2000)) for _ in range(12)) + "."
        body = json.dumps({"messages": [{"role": "user", "content": text}]})
        appends += ["--path", f"/v1/conversations/{c}/messages", "--body", body]
    write(os.path.join(out, "app.nul"), appends)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
