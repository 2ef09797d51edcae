#!/usr/bin/env python3
"""Reference keyphrases for confab's YAKE-style topic extractor.

Takes the longer dialogues shipped by PyPI `chatterbot-corpus` (English), joins each into one
document (one line per turn, as confab does) and writes the top 5 keyphrases of PyPI `yake`
(n=3, dedupLim=0.9) as JSON lines: {"text": ..., "yake": [...]}.

    /tmp/venv/bin/pip install yake chatterbot-corpus pyyaml
    /tmp/venv/bin/python tools/yake_reference.py > crates/core/tests/fixtures/yake_reference.jsonl

The core test `keyphrase_overlap` reports how many of these confab also finds.
"""
import json
import os
import sys

import chatterbot_corpus
import yake
import yaml

MIN_TURNS = 4
MAX_DOCS = 60


def dialogues():
    root = os.path.join(os.path.dirname(chatterbot_corpus.__file__), "data", "english")
    for name in sorted(os.listdir(root)):
        if not name.endswith(".yml"):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for conv in doc.get("conversations", []):
            lines = [l.strip() for l in conv if isinstance(l, str) and l.strip()]
            if len(lines) >= MIN_TURNS:
                yield "\n".join(lines)


def main():
    extractor = yake.KeywordExtractor(lan="en", n=3, dedupLim=0.9, top=5)
    for text in list(dialogues())[:MAX_DOCS]:
        kws = [k for k, _ in extractor.extract_keywords(text)]
        sys.stdout.write(json.dumps({"text": text, "yake": kws}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
