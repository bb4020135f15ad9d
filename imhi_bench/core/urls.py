"""Credentials out of URLs: one masking of a URL (a password in its user info, a key or token
in its query string) for every place a URL is written or shown -- store URLs in messages,
an API's base URL in run folders, provenance, the generation cache and error messages."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"
# Query parameters that carry a credential: api_key, key, token, access_token, sig,
# password, secret, X-Amz-Signature, ... (matched anywhere in the parameter's name).
_SECRET_PARAM = re.compile(r"key|token|secret|passw|pwd|sig|auth|credential|session",
                           re.IGNORECASE)
# scheme://user:password@host -- the password runs to the last "@", so one holding "@" or
# "/" (not percent-encoded, as users do type them) is masked whole.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/?#\s@]*):\S*@")
_QUERY_PARAM = re.compile(r"(?P<sep>[?&;])(?P<name>[^=&;#\s]+)=(?P<value>[^&;#\s]*)")
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def _userinfo(m: re.Match) -> str:
    # a user name alone (postgresql://me@host) is no secret, and is left as it is
    return f"{m['scheme']}{m['user']}:{MASK}@"


def _param(m: re.Match) -> str:
    if not m["value"] or not _SECRET_PARAM.search(m["name"]):
        return m.group(0)
    return f"{m['sep']}{m['name']}={MASK}"


def mask_url(url: str | None) -> str | None:
    """`url` with any password and any credential in its query string replaced by ***;
    a URL without credentials comes back unchanged (so cache keys built from it stay put).
    Works on text no URL parser accepts too."""
    if not url:
        return url
    url = _USERINFO.sub(_userinfo, url)
    return _QUERY_PARAM.sub(_param, url)


def mask_text(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` (an error message, say) with every URL in it masked and every one of
    `secrets` (an API key the server echoed back) replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return _URL.sub(_masked_in_text, text)


def _masked_in_text(m: re.Match) -> str:
    # "(see http://h/v1?key=K)." -- the closing punctuation belongs to the sentence
    url = m.group(0)
    tail = len(url) - len(url.rstrip(").,;:!?]}"))
    return (mask_url(url[:len(url) - tail]) or "") + url[len(url) - tail:]
