"""Labels written so that Mermaid shows them as they are: one escaping for every diagram.

Every name and label livekit puts into Mermaid source (tree nodes and
edges, sequence-diagram participants, messages and notes) goes through
:func:`escape`, and the same text stays readable and harmless in a
terminal through :func:`visible`.

What Mermaid would otherwise read as syntax, measured in the vendored
mermaid (tests/test_labels.py draws each case in chromium):

- ``"`` closes a quoted label, ``|`` an edge label, ``;`` and a newline
  end a statement: entity codes (``#quot;``, ``#124;``, ``#59;``, ``#10;``).
- ``#`` starts an entity code, so it is one too (``#35;``): ``#35;`` in a
  name then shows as written.
- ``%`` starts a comment, and ``%%{init: ...}%%`` anywhere in the source
  is applied as configuration (a theme, even before parsing): ``#37;``.
- ``<`` and ``>`` would make HTML (``<br>``, ``<b>``), ``&`` would make an
  HTML entity (``a &amp; b`` shown as ``a & b``): ``#lt;``, ``#gt;``,
  ``#amp;``.
- a backtick opens a Markdown string in a flowchart (`` `**md**` `` shown
  bold): ``#96;``.
- U+2028 and U+2029 end a line for JavaScript: ``#8232;``, ``#8233;``.
- a sequence-diagram text that begins with ``wrap:`` or ``nowrap:`` would
  lose those words to a layout switch: their colon is ``#58;``.
- other control characters have no visible form (NUL turns into U+FFFD,
  ESC vanishes, CR breaks the line): written as ``\\x00``, ``\\x1b``,
  ``\\x0d``, as Python would, here and in terminal drawings alike.

Very long names are cut to :data:`MAX_NAME` characters in the drawing by
:func:`short_name`; the formatters keep the full name in the drawing too
(a tooltip on a tree's node, a note under a participant).

See https://mermaid.js.org/syntax/flowchart.html#entity-codes-to-escape-characters
"""

from __future__ import annotations

import re

#: Names longer than this are drawn shortened, with their full text beside them.
MAX_NAME = 80

_ENTITIES = {
    "#": "#35;",
    ";": "#59;",
    "%": "#37;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    '"': "#quot;",
    "|": "#124;",
    "`": "#96;",
    "\n": "#10;",
    "\t": "#9;",
    "\u2028": "#8232;",
    "\u2029": "#8233;",
}

_CONTROL = [*range(0x20), *range(0x7F, 0xA0)]

# One C-level pass (str.translate) instead of a Python loop per character:
# a diagram of thousands of arrows is escaped in milliseconds.
_VISIBLE = {code: f"\\x{code:02x}" for code in _CONTROL}
_MERMAID = {**_VISIBLE, **{ord(char): entity for char, entity in _ENTITIES.items()}}

# Mermaid's sequence parser strips a leading "wrap:" / "nowrap:" (after
# trimming) and takes it as a layout switch.
_WRAP = re.compile(r"(\s*:?(?:no)?wrap):")
# Any character escape() changes: most labels hold none.  (A "wrap:" is
# looked for apart: in one pattern, the alternative is tried at every
# character, and the search takes twice as long.)
_SPECIAL = re.compile(r'[#;%<>&"|`\x00-\x1f\x7f-\x9f\u2028\u2029]')


# The ASCII characters of _SPECIAL, as bytes: deleting them from ASCII text
# is a tighter loop in C than the pattern's search (a fourth of its time).
_SPECIAL_ASCII = bytes(code for code in range(128) if _SPECIAL.match(chr(code)))


def needs_escape(text: str) -> bool:
    """Whether :func:`escape` would change ``text``: one test for many labels joined.

    >>> needs_escape("hello"), needs_escape("a;b"), needs_escape("wrap: me")
    (False, True, True)
    >>> needs_escape("héllo"), needs_escape("é\u2028")
    (False, True)
    """
    if "wrap:" in text:
        return True
    if text.isascii():  # known without a look at the text
        data = text.encode("ascii")
        return len(data.translate(None, _SPECIAL_ASCII)) != len(data)
    return _SPECIAL.search(text) is not None


def escape(text: str) -> str:
    """Return ``text`` written so that Mermaid shows it as it is, in any label.

    Other non-ASCII text is left alone, since Mermaid reads UTF-8.

    Examples
    --------
    >>> escape('say "hi"; #1 <b>')
    'say #quot;hi#quot;#59; #35;1 #lt;b#gt;'
    >>> escape("%%{init: {'theme':'dark'}}%%")
    "#37;#37;{init: {'theme':'dark'}}#37;#37;"
    >>> escape("a &amp; b `**md**` | c")
    'a #amp;amp#59; b #96;**md**#96; #124; c'
    >>> escape("ping\\npong\\x1b[0m")
    'ping#10;pong\\\\x1b[0m'
    >>> escape("héllo 日本")
    'héllo 日本'
    >>> escape("wrap: me")
    'wrap#58; me'
    """
    # Most labels hold nothing to escape: two C-level searches say so.
    if _SPECIAL.search(text) is None and "wrap:" not in text:
        return text
    escaped = text.translate(_MERMAID)
    prefix = _WRAP.match(escaped) if "wrap:" in escaped else None
    if prefix is not None:
        escaped = f"{prefix.group(1)}#58;{escaped[prefix.end() :]}"
    return escaped


def short_name(text: str, limit: int = MAX_NAME) -> str:
    """Return ``text`` cut in the middle to ``limit`` characters, or unchanged if it fits.

    The start and the end stay: a thread pool's name and its worker's number.

    Examples
    --------
    >>> short_name("short")
    'short'
    >>> short_name("ThreadPoolExecutor-with-a-very-long-prefix_12", limit=20)
    'ThreadPoolEx…efix_12'
    """
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 3
    tail = limit - 1 - head
    return f"{text[:head]}…{text[-tail:] if tail else ''}"


def visible(text: str) -> str:
    """Return ``text`` with its control characters written out, for a terminal.

    A traced program's names must not drive the reader's terminal (ESC
    above all), nor break a drawing's lines.

    Examples
    --------
    >>> visible("red\\x1b[31m\\nnext")
    'red\\\\x1b[31m\\\\x0anext'
    """
    return text.translate(_VISIBLE)
