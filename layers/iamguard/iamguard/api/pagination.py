"""Opaque page tokens: where to resume a DynamoDB read, bound to the query that produced them."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Collection, Mapping

from iamguard.api.errors import BadRequest

BAD_TOKEN = "next_token is not a token this API issued"


def query_fingerprint(**filters: object) -> str:
    """A short digest of the filters a token is valid for."""
    canonical = json.dumps({k: str(v) for k, v in filters.items() if v is not None}, sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def encode_token(key: Mapping[str, str], fingerprint: str) -> str:
    raw = json.dumps({"k": dict(key), "q": fingerprint}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_token(token: str, fingerprint: str, key_names: Collection[str] = ("pk", "sk")) -> dict[str, str]:
    """The resume key inside `token`; BadRequest if it is malformed, of another shape or from another query."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise BadRequest(BAD_TOKEN) from exc
    if not isinstance(data, dict) or not isinstance(data.get("k"), dict):
        raise BadRequest(BAD_TOKEN)
    key = data["k"]
    if set(key) != set(key_names) or not all(isinstance(value, str) and value for value in key.values()):
        raise BadRequest(BAD_TOKEN)
    if data.get("q") != fingerprint:
        raise BadRequest("next_token belongs to a query with other filters; repeat the same filters")
    return {str(name): str(value) for name, value in key.items()}
