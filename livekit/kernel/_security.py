"""The checks every request to ``livekit serve`` passes, as pure functions.

A local server that runs code must be safe from the other web pages the
reader has open.  Three checks, after Jupyter server's ``check_host``,
``check_origin`` and token handling (written anew here, not copied):

* **Host** must name a loopback address with the server's own port.  A page
  from another site that re-points its DNS name at 127.0.0.1 (DNS
  rebinding) still sends its own name as Host, and is refused.
* **Origin**, when the browser sends one, must be this server's origin.  A
  page elsewhere can make the browser send a request here, but not with our
  origin.
* The **token** works once: it is traded for a login cookie and, for the
  page's own script, a *live key* (see :func:`exchange_page`).  Every
  secret is compared in constant time, so that its bytes cannot be guessed
  one by one from timing.

Cookies ignore ports: every server on 127.0.0.1 that the browser visits
receives the login cookie.  So the cookie alone opens the book's files but
not its live socket, which also needs the live key.  The key reaches the
page once, in the answer to the token, and stays in ``localStorage``, which
is kept per origin, port included.
"""

from __future__ import annotations

import hmac
import html
import ipaddress
import json
import secrets
from urllib.parse import quote, urlencode, urlsplit

#: Host names that always mean this machine, besides loopback IP addresses.
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain"})

#: Where the page's script keeps the live key (``localStorage``, per origin).
LIVE_KEY_STORAGE = "livekit-live-key"

#: Characters of a path that stay as they are in a redirect target.
_PATH_SAFE = "/!$&'()*+,;=:@-._~"


def new_token() -> str:
    """Return a fresh random token (256 bits, URL-safe).

    Examples
    --------
    >>> len(new_token()) >= 43 and new_token() != new_token()
    True
    """
    return secrets.token_urlsafe(32)


def token_matches(given: str | None, expected: str) -> bool:
    """Return whether ``given`` is the token, compared in constant time.

    Examples
    --------
    >>> token_matches("abc", "abc"), token_matches("abd", "abc"), token_matches(None, "abc")
    (True, False, False)
    """
    if not given:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def split_host(value: str) -> tuple[str, int | None] | None:
    """Split a Host header into a lower-case name and a port.

    Returns ``None`` when the header cannot be a host (empty, bad port, bad
    brackets).

    Examples
    --------
    >>> split_host("127.0.0.1:8765"), split_host("[::1]:80"), split_host("LocalHost")
    (('127.0.0.1', 8765), ('::1', 80), ('localhost', None))
    >>> split_host("evil.example:x") is None
    True
    """
    value = value.strip().lower()
    name, port_text = value, ""
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None
        port_text = rest[1:]
    elif value.count(":") == 1:
        name, port_text = value.split(":")
    elif ":" in value:
        return None  # an IPv6 address must be bracketed in a Host header
    if not name or (port_text and not (port_text.isdigit() and 0 < int(port_text) < 65536)):
        return None
    return name, int(port_text) if port_text else None


def is_loopback_name(name: str) -> bool:
    """Return whether a host name or address means this machine.

    Examples
    --------
    >>> [is_loopback_name(n) for n in ("localhost", "127.0.0.2", "::1", "10.0.0.1", "a.test")]
    [True, True, True, False, False]
    """
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_allowed(host_header: str | None, port: int, *, allow_any_host: bool = False) -> bool:
    """Return whether a request's Host header names this server on loopback.

    ``allow_any_host`` (``livekit serve --host 0.0.0.0``) accepts any name
    with the right port: the reader has chosen to serve beyond this machine.

    Examples
    --------
    >>> host_allowed("127.0.0.1:8765", 8765), host_allowed("localhost:8765", 8765)
    (True, True)
    >>> host_allowed("attacker.example:8765", 8765), host_allowed("127.0.0.1:9999", 8765)
    (False, False)
    """
    if not host_header:
        return False
    parts = split_host(host_header)
    if parts is None:
        return False
    name, given_port = parts
    if given_port is None:
        given_port = 80
    if given_port != port:
        return False
    return allow_any_host or is_loopback_name(name)


def origin_allowed(origin: str | None, host_header: str | None, *, scheme: str = "http") -> bool:
    """Return whether a request's Origin is absent or this server's own.

    Browsers send Origin on cross-site requests, on every WebSocket
    handshake, and on same-site ones other than GET and HEAD; a request
    without it did not come from another site's script.  ``null`` (a
    sandboxed frame or a ``file://`` page) is refused, and so is the right
    host under another scheme.

    Examples
    --------
    >>> origin_allowed(None, "127.0.0.1:8765")
    True
    >>> origin_allowed("http://127.0.0.1:8765", "127.0.0.1:8765")
    True
    >>> origin_allowed("http://evil.example", "127.0.0.1:8765"), origin_allowed("null", "x")
    (False, False)
    >>> origin_allowed("https://127.0.0.1:8765", "127.0.0.1:8765")
    False
    """
    if origin is None:
        return True
    if not host_header:
        return False
    parts = urlsplit(origin.strip())
    return parts.scheme == scheme and parts.netloc.lower() == host_header.strip().lower()


def local_target(path: str, query: list[tuple[str, str]]) -> str:
    r"""Return an address on this server for a redirect: ``path``, then ``query``.

    ``path`` and ``query`` are decoded (as the server received them); both
    are encoded again, so that a decoded ``&`` cannot start a parameter of
    its own.  The target always starts with exactly one ``/``: a browser
    reads ``//host/...`` (or ``/\host``) as an address on another site.

    Examples
    --------
    >>> local_target("//evil.example/", [])
    '/evil.example/'
    >>> local_target("/a b.html", [("next", "a&token=x")])
    '/a%20b.html?next=a%26token%3Dx'
    >>> local_target("/\\evil.example", [("x", "1")])
    '/%5Cevil.example?x=1'
    """
    target = "/" + quote(path.lstrip("/"), safe=_PATH_SAFE)
    return f"{target}?{urlencode(query)}" if query else target


def exchange_page(target: str, live_key: str) -> str:
    """Return the page that answers the token: it keeps the live key, then opens ``target``.

    The key goes to ``localStorage`` (kept per origin, port included), where
    ``livekit-live.js`` finds it to open the live socket; ``location.replace``
    drops the token's address from the history.

    Examples
    --------
    >>> page = exchange_page("/live.html?x=1", "k3y")
    >>> 'localStorage.setItem("livekit-live-key", "k3y")' in page
    True
    >>> 'location.replace("/live.html?x=1")' in page
    True
    """
    # json.dumps gives a JavaScript string; "<" escaped so that nothing in it
    # can end the script element.
    key = json.dumps(live_key).replace("<", "\\u003c")
    where = json.dumps(target).replace("<", "\\u003c")
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8"><title>livekit serve</title>\n'
        '<link rel="icon" href="/favicon.ico">\n'
        f"<script>\ntry {{ localStorage.setItem({json.dumps(LIVE_KEY_STORAGE)}, {key}); }}"
        " catch (err) {}\n"
        f"location.replace({where});\n</script></head>\n"
        f'<body><p><a href="{html.escape(target)}">Open the book</a></p></body></html>\n'
    )
