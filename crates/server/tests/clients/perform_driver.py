# Drives seed 000's ConversationsAPI against a confab server the way the seed's usage and
# "Common Use Cases" do, and prints what it saw as one JSON object for the Rust test to check.
# Environment: PERFORM_BASE_URL, API_KEY_ID, API_KEY_SECRET (the names the seed uses).

import json
import os
import sys

import requests

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from perform_client import ConversationsAPI  # noqa: E402


def status_of(call):
    """The HTTP status raise_for_status raised, or None when the call succeeded."""
    try:
        call()
        return None
    except requests.HTTPError as e:
        return e.response.status_code


api = ConversationsAPI(os.getenv("API_KEY_ID"), os.getenv("API_KEY_SECRET"))

out = {}
out["first_page"] = api.list(page=1, limit=10)
out["all"] = api.export_all()
out["exports"] = {c["id"]: api.export_conversation(c["id"]) for c in out["all"]}
out["get"] = [api.get(c["id"]) for c in out["all"][:5]]
out["missing_status"] = status_of(lambda: api.export_conversation("conv_123"))
bad = ConversationsAPI(os.getenv("API_KEY_ID"), "not-the-secret")
out["bad_credentials_status"] = status_of(lambda: bad.list(page=1, limit=10))
out["bad_limit_status"] = status_of(lambda: api.list(page=1, limit=500))

json.dump(out, sys.stdout)
