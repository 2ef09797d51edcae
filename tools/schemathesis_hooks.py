"""schemathesis hooks (schemathesis.toml): a serializer for `POST /v1/import`'s NDJSON body."""
import json

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(ctx, value):
    """A generated string is sent as is; anything else as one JSON line."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    return (json.dumps(value) + "\n").encode()
