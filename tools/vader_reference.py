#!/usr/bin/env python3
"""Reference sentiment scores for confab's VADER port.

Reads every English dialogue line shipped by PyPI `chatterbot-corpus`, scores it with PyPI
`vaderSentiment` 3.3.2 and writes one JSON object per line:
{"text": ..., "neg": ..., "neu": ..., "pos": ..., "compound": ...}

    python3 -m venv /tmp/venv
    /tmp/venv/bin/pip install vaderSentiment==3.3.2 chatterbot-corpus pyyaml
    /tmp/venv/bin/python tools/vader_reference.py > crates/core/tests/fixtures/vader_reference.jsonl

The core test `vader_agreement` compares the port with this file.
"""
import json
import os
import sys

import chatterbot_corpus
import yaml
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

import vaderSentiment

assert "3.3.2" in open(
    os.path.join(os.path.dirname(vaderSentiment.__file__), "..", "vaderSentiment-3.3.2.dist-info", "METADATA"),
    encoding="utf-8",
).read(), "needs vaderSentiment 3.3.2"


def lines():
    root = os.path.join(os.path.dirname(chatterbot_corpus.__file__), "data", "english")
    for name in sorted(os.listdir(root)):
        if not name.endswith(".yml"):
            continue
        with open(os.path.join(root, name), encoding="utf-8") as f:
            doc = yaml.safe_load(f)
        for conv in doc.get("conversations", []):
            for line in conv:
                if isinstance(line, str) and line.strip():
                    yield line.strip()


def main():
    analyzer = SentimentIntensityAnalyzer()
    seen = set()
    for text in lines():
        if text in seen:
            continue
        seen.add(text)
        s = analyzer.polarity_scores(text)
        rec = {"text": text, **s}
        sys.stdout.write(json.dumps(rec, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
