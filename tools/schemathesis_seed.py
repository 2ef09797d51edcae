#!/usr/bin/env python3
"""Seed a confab server for schemathesis: one conversation with messages for one agent, and one
webhook endpoint. Prints the ids as `NAME=value` lines for the caller to export (the committed
schemathesis.toml reads them from the environment).

    tools/schemathesis_seed.py BASE_URL TOKEN
"""
import json
import sys
import urllib.request

base, token = sys.argv[1], sys.argv[2]
AGENT = "0190f1c2-3b4d-7e5f-8a6b-7c8d9e0f1a2b"  # a UUID, so it is also a Sensay replicaUUID


def call(method, path, body):
    req = urllib.request.Request(
        base + path,
        method=method,
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + token, "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


conv = call(
    "POST",
    "/v1/conversations",
    {
        "agent_id": AGENT,
        "user_id": "user-st",
        "title": "schemathesis seed",
        "messages": [
            {"role": "user", "content": "Hello, can you reset my password?"},
            {"role": "assistant", "content": "Sure, I sent a reset link to your email."},
            {"role": "user", "content": "Thanks, it worked. @support is great"},
            {"role": "assistant", "content": "Glad to help!"},
        ],
    },
)
hook = call("POST", "/v1/webhooks", {"url": "https://example.invalid/hook"})
print("ST_AGENT=%s" % AGENT)
print("ST_CONVERSATION=%s" % conv["id"])
print("ST_WEBHOOK=%s" % hook["id"])
