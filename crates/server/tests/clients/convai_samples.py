# Seed 002's two Python samples (chatHistory/list, then chatHistory/details), as printed, with
# only the placeholders filled in: the URL's host from CONVAI_BASE_URL, '<Your-API-Key>' from
# CONVAI_API_KEY, '<Your-Character-Id>' from CONVAI_CHAR_ID, and '<Your-Session-ID>' with the
# first session the list sample printed. Prints both responses as one JSON object.

import io
import json as _json
import os
import sys
from contextlib import redirect_stdout

BASE = os.environ["CONVAI_BASE_URL"]
KEY = os.environ["CONVAI_API_KEY"]
CHAR = os.environ["CONVAI_CHAR_ID"]


def list_sample():
    import requests
    import json

    url = BASE + "/character/chatHistory/list"

    headers = { 
        'CONVAI-API-KEY': KEY,
        'Content-Type': 'application/json'
    }

    # Create a dictionary for the JSON payload
    payload = { 
        "charID": CHAR,
        "limit": "-1"
    }

    # Convert the payload to JSON
    json_payload = json.dumps(payload)

    response = requests.post(url, headers=headers, data=json_payload)

    print(response.text)


def details_sample(session_id):
    import requests
    import json

    url = BASE + "/character/chatHistory/details"

    headers = { 
        'CONVAI-API-KEY': KEY,
        'Content-Type': 'application/json'
    }

    # Create a dictionary for the JSON payload
    payload = { 
        "charID": CHAR,
        "sessionID": session_id
    }

    # Convert the payload to JSON
    json_payload = json.dumps(payload)

    response = requests.post(url, headers=headers, data=json_payload)

    print(response.text)


def printed(f, *args):
    buf = io.StringIO()
    with redirect_stdout(buf):
        f(*args)
    return _json.loads(buf.getvalue())


sessions = printed(list_sample)
out = {"list": sessions, "details": printed(details_sample, sessions[0]["sessionID"])}
_json.dump(out, sys.stdout)
