#!/usr/bin/env python3
"""Request lists for `confab-bench load` (NUL-separated arguments, read by ab.sh) from the
benchmark's dataset: `confab-bench dataset > ds.ndjson; load_args.py ds.ndjson OUTDIR`.

Writes get.nul (GET a conversation), page.nul (its newest 50 messages, native), cold.nul (the
"different words in turn" row's searches, the words as `confab-bench words` prints them) and
app.nul (append one message of twelve of those words), each over the same 4,000 conversations
in a seeded order. The appends draw the words evenly, not by the dataset's ranking: a store
appended to this way holds its commonest words ever less often among its newest messages,
which PostgreSQL's statistics do not see until the next ANALYZE (docs/performance.md,
forty-fifth session). Import a fresh store for the search comparisons. LOADER names the
confab-bench binary (default: this checkout's release build), as for ab.sh.
"""
import json
import os
import random
import subprocess
import sys


def write(path, args):
    with open(path, "wb") as f:
        f.write(b"\0".join(a.encode() for a in args) + b"\0")


def main(dataset, out):
    here = os.path.dirname(os.path.abspath(__file__))
    loader = os.environ.get("LOADER", os.path.join(here, "..", "..", "target", "release",
                                                    "confab-bench"))
    words = subprocess.run([loader, "words"], check=True, capture_output=True,
                           text=True).stdout.split()
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
          [a for w in words for a in ("--path", f"/v1/search?q={w}")])
    appends = []
    for c in ids:
        text = " ".join(rng.choice(words) for _ in range(12)) + "."
        body = json.dumps({"messages": [{"role": "user", "content": text}]})
        appends += ["--path", f"/v1/conversations/{c}/messages", "--body", body]
    write(os.path.join(out, "app.nul"), appends)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
