from __future__ import annotations

from livekit import _assets
from livekit.outputs import _html, mermaid, vegalite, vendored


def test_every_pinned_asset_is_vendored_with_its_licence() -> None:
    for asset in vendored():
        assert asset.path.is_file(), asset
        assert asset.path.stat().st_size > 10_000, asset
        licence = _assets.VENDOR / "LICENSES" / f"{asset.package}.LICENSE"
        assert licence.read_text(encoding="utf-8").strip(), licence


def test_the_versions_file_matches_the_pins() -> None:
    lines = (_assets.VENDOR / "VERSIONS").read_text(encoding="utf-8").splitlines()
    assert lines == [f"{a.package} {a.version} {a.filename}" for a in vendored()]


def test_livekit_own_scripts_ship_in_the_package() -> None:
    for asset in (_html.PAGE_BOOT, mermaid.BOOT, vegalite.BOOT):
        assert asset.path.parent == _assets.STATIC
        assert "livekit" in _assets.read(asset)


def test_vendored_scripts_are_classic_scripts_not_modules() -> None:
    for asset in vendored():
        head = _assets.read(asset)[:2000]
        assert "import " not in head.split("\n", 1)[0], asset
        assert not head.lstrip().startswith("export "), asset


def test_inline_script_cannot_be_closed_by_its_content() -> None:
    assert _assets.inline_script('x = "</script>"') == '<script>\nx = "<\\/script>"\n</script>'


def test_inline_script_can_hide_amd_so_umd_bundles_set_globals() -> None:
    text = _assets.inline_script("body()", hide_amd=True)
    assert text == (
        "<script>\n(function (define, module, exports) {\nbody()\n}).call(window);\n</script>"
    )
