"""The JavaScript that livekit ships, and where it lives.

Every asset is vendored inside the package, pinned, with its licence beside
it, so that the book, saved HTML files, notebooks and the local kernel all
draw offline.  Each loads as a classic ``<script>`` (not an ES module),
because browsers refuse module imports from ``file://`` pages.

Each kind of output (:mod:`livekit.outputs`) names its own assets; refresh
them from the npm registry with ``python -m livekit.outputs`` after changing
a version there.
"""

from __future__ import annotations

import base64
import functools
import gzip
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"
VENDOR = STATIC / "vendor"


@dataclass(frozen=True)
class Asset:
    """One vendored file: the npm package it comes from and its path in it."""

    package: str
    version: str
    member: str

    @property
    def filename(self) -> str:
        return Path(self.member).name

    @property
    def path(self) -> Path:
        return (VENDOR if self.package else STATIC) / self.filename


@functools.cache
def read(asset: Asset) -> str:
    """Return the text of a vendored asset (cached: mermaid is 5 MB)."""
    return asset.path.read_text(encoding="utf-8")


def inline_script(source: str, *, hide_amd: bool = False) -> str:
    """Wrap JavaScript source as an inline classic ``<script>`` element.

    ``</script`` inside the source is escaped so it cannot end the element
    early.  With ``hide_amd`` the code runs in a function scope where
    ``define``, ``module`` and ``exports`` are undefined, so that a UMD
    bundle (vega) sets its browser global even on a page that has require.js
    (classic Jupyter does).  Mermaid's bundle must not be wrapped: it reads
    back the global it declares with ``var``.
    """
    body = source.replace("</script", "<\\/script")
    if hide_amd:
        body = f"(function (define, module, exports) {{\n{body}\n}}).call(window);"
    return f"<script>\n{body}\n</script>"


@functools.cache
def packed(asset: Asset) -> str:
    """Return a vendored asset gzipped, then base64-encoded (cached).

    Mermaid's 5.5 MB become 2.1 MB: what a saved page carries.

    Examples
    --------
    >>> import base64, gzip
    >>> from livekit.outputs.mermaid import MERMAID
    >>> gzip.decompress(base64.b64decode(packed(MERMAID))).decode() == read(MERMAID)
    True
    """
    data = gzip.compress(read(asset).encode("utf-8"), compresslevel=9, mtime=0)
    return base64.b64encode(data).decode("ascii")


def packed_script(asset: Asset, *, then: str = "") -> str:
    """Return a ``<script>`` that unpacks :func:`packed` ``asset`` and runs it.

    The browser's own ``DecompressionStream`` unpacks it, with no request
    (a page opened from ``file://`` may make none); the asset then runs as
    a classic script of the page, and ``then`` (JavaScript) after it.  It
    runs later than the scripts after it: those must wait for ``then``.  A
    browser without ``DecompressionStream`` (before 2023) logs a warning.

    Examples
    --------
    >>> from livekit.outputs.mermaid import MERMAID
    >>> script = packed_script(MERMAID, then="window.livekitMermaid.run();")
    >>> script.startswith("<script>") and "DecompressionStream" in script
    True
    """
    loader = (
        "(function () {\n"
        '  if (typeof DecompressionStream === "undefined") {\n'
        f'    console.warn("livekit: this browser cannot unpack {asset.filename}");\n'
        "    return;\n"
        "  }\n"
        f'  var binary = atob("{packed(asset)}");\n'
        "  var bytes = new Uint8Array(binary.length);\n"
        "  for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);\n"
        '  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));\n'
        "  new Response(stream).text().then(function (text) {\n"
        '    var script = document.createElement("script");\n'
        "    script.textContent = text;\n"
        "    document.head.appendChild(script);\n"
        f"    {then}\n"
        "  });\n"
        "})();"
    )
    return inline_script(loader)


def refresh(assets: tuple[Asset, ...]) -> None:
    """Download the pinned versions with ``npm pack`` and vendor them."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is needed to refresh the vendored JavaScript")
    licences = VENDOR / "LICENSES"
    licences.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for asset in assets:
            spec = f"{asset.package}@{asset.version}"
            out = subprocess.run(  # noqa: S603 - fixed arguments, npm from PATH
                [npm, "pack", spec, "--silent"],
                cwd=tmp,
                check=True,
                capture_output=True,
                text=True,
            )
            tarball = Path(tmp) / out.stdout.strip().splitlines()[-1]
            with tarfile.open(tarball) as tar:
                for member, target in (
                    (asset.member, asset.path),
                    ("LICENSE", licences / f"{asset.package}.LICENSE"),
                ):
                    handle = tar.extractfile(f"package/{member}")
                    if handle is None:
                        raise SystemExit(f"{spec} has no file {member}")
                    target.write_bytes(handle.read())
            print(f"vendored {spec}: {asset.filename}")
    lines = [f"{a.package} {a.version} {a.filename}" for a in assets]
    (VENDOR / "VERSIONS").write_text("\n".join(lines) + "\n", encoding="utf-8")
