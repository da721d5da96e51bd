from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from livekit import Mermaid
from livekit import mermaid as mermaid_module
from livekit.mermaid import SAVE_HINT

SOURCE = "sequenceDiagram\n  a->>b: ping\n  b->>a: pong"


def test_str_is_the_mermaid_source() -> None:
    assert str(Mermaid(SOURCE)) == SOURCE


def test_bundle_has_the_mermaid_type_and_readable_text() -> None:
    data, metadata = Mermaid(SOURCE)._repr_mimebundle_()
    assert data == {"text/vnd.mermaid": SOURCE, "text/plain": SOURCE}
    assert metadata == {}


def test_caption_rides_in_the_metadata_and_as_a_comment_in_the_text() -> None:
    data, metadata = Mermaid(SOURCE, caption="a pings b")._repr_mimebundle_()
    assert data["text/plain"] == "%% a pings b\n" + SOURCE
    assert metadata == {"text/vnd.mermaid": {"caption": "a pings b"}}


def test_a_multiline_caption_stays_a_valid_comment() -> None:
    text = Mermaid("graph TD\n  a", caption="one\ntwo").text()
    assert text == "%% one\n%% two\ngraph TD\n  a"


def test_bundle_honours_include_and_exclude() -> None:
    diagram = Mermaid(SOURCE)
    assert diagram._repr_mimebundle_(include=["text/plain"])[0] == {"text/plain": SOURCE}
    assert diagram._repr_mimebundle_(exclude=["text/plain"])[0] == {"text/vnd.mermaid": SOURCE}


def test_a_non_string_source_is_a_type_error_naming_the_type() -> None:
    with pytest.raises(TypeError, match=r"Mermaid source must be a str, got int: 123"):
        Mermaid(123)  # type: ignore[arg-type]


def test_a_non_string_caption_is_a_type_error() -> None:
    with pytest.raises(TypeError, match=r"caption must be a str or None, got list"):
        Mermaid(SOURCE, caption=["x"])  # type: ignore[arg-type]


def test_an_empty_source_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty"):
        Mermaid("  \n")


def test_equal_diagrams_compare_and_hash_equal() -> None:
    assert Mermaid(SOURCE, caption="c") == Mermaid(SOURCE, caption="c")
    assert Mermaid(SOURCE) != Mermaid(SOURCE, caption="c")
    assert len({Mermaid(SOURCE), Mermaid(SOURCE)}) == 1


def test_repr_names_the_diagram_kind_and_size() -> None:
    assert (
        repr(Mermaid(SOURCE, caption="c")) == "<Mermaid 'sequenceDiagram' (3 lines), caption='c'>"
    )


def test_save_writes_mmd_with_the_caption_as_comment(tmp_path: Path) -> None:
    path = Mermaid(SOURCE, caption="ping").save(tmp_path / "trace.mmd")
    assert path.read_text(encoding="utf-8") == "%% ping\n" + SOURCE + "\n"


def test_save_writes_a_self_contained_html_page(tmp_path: Path) -> None:
    page = Mermaid(SOURCE, caption="a <pings> b").save(tmp_path / "trace.html").read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>a &lt;pings&gt; b</title>" in page
    assert "a-&gt;&gt;b: ping" in page
    # The library itself is inlined, gzipped: the page unpacks it.
    packed = re.search(r'atob\("([A-Za-z0-9+/=]+)"\)', page)
    assert packed is not None
    assert 'globalThis["mermaid"]' in gzip.decompress(base64.b64decode(packed[1])).decode()
    assert "<script src" not in page
    assert "http://" not in page.split("<script>")[0]


def test_a_saved_page_carries_mermaid_in_less_than_half_its_size(tmp_path: Path) -> None:
    page = Mermaid(SOURCE).save(tmp_path / "trace.html").stat().st_size
    library = (Path(mermaid_module.__file__).parent / "static/vendor/mermaid.min.js").stat().st_size
    assert page < library * 0.4


def test_save_rejects_another_suffix_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(
        ValueError, match=r"expected a path ending in \.mmd or \.html, got '.*trace\.png'"
    ):
        Mermaid(SOURCE).save(tmp_path / "trace.png")


def test_html_fragment_can_leave_the_library_out() -> None:
    fragment = Mermaid(SOURCE).to_html(full_page=False, library=False)
    assert "<!DOCTYPE" not in fragment
    assert 'globalThis["mermaid"]' not in fragment
    assert "livekitMermaid" in fragment


def test_vscode_gets_html_with_the_library_once_per_cell_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    shell = types.SimpleNamespace(execution_count=3)
    monkeypatch.setattr(mermaid_module._display, "host", lambda: "vscode")
    monkeypatch.setattr(mermaid_module._display, "_ipython", lambda: shell)
    monkeypatch.setattr(mermaid_module._display, "_library_runs", {})
    first = Mermaid(SOURCE)._repr_mimebundle_()[0]["text/html"]
    second = Mermaid(SOURCE)._repr_mimebundle_()[0]["text/html"]
    shell.execution_count = 4
    next_run = Mermaid(SOURCE)._repr_mimebundle_()[0]["text/html"]
    assert 'globalThis["mermaid"]' in first
    assert 'globalThis["mermaid"]' not in second
    assert "livekitMermaid" in second
    assert 'globalThis["mermaid"]' in next_run


def test_jupyterlab_and_the_book_get_no_html(monkeypatch: pytest.MonkeyPatch) -> None:
    for host in ("jupyter", "book", "terminal"):
        monkeypatch.setattr(mermaid_module._display, "host", lambda host=host: host)
        assert "text/html" not in Mermaid(SOURCE)._repr_mimebundle_()[0]


def test_a_script_in_a_terminal_prints_the_caption_and_the_source() -> None:
    code = textwrap.dedent(
        f"""
        from livekit import _display, Mermaid
        _display.show(Mermaid({SOURCE!r}, caption="ping"))
        print(_display.host())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out == f"%% ping\n{SOURCE}\nterminal\n"


def test_render_functions_in_a_plain_python_script_print_their_captions(tmp_path: Path) -> None:
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import livekit

            livekit.render_seq_trace(lambda: None, caption="Nothing is sent.")
            livekit.render_sup_tree(livekit.Supervisor(name="jobs"))
            livekit.render_app_tree("livekit", caption="livekit, as a script sees it.")
            """
        ),
        encoding="utf-8",
    )
    out = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    # Traces and trees alike: the caption, the plain-text drawing, how to save it.
    assert out == (
        f"Nothing is sent.\n\n{SAVE_HINT}\n"
        f"Supervision tree of 'jobs'.\n\njobs (one_for_one)\n\n{SAVE_HINT}\n"
        "livekit, as a script sees it.\n\nlivekit (no background work started)\n\n"
        f"{SAVE_HINT}\n"
    )


# The script a user runs: threads and a queue, rendered where it runs.
TRACED_SCRIPT = """\
import queue, threading
import livekit

def ping_pong():
    inbox, outbox = queue.Queue(), queue.Queue()
    def pong():
        outbox.put(inbox.get().upper())
    threading.Thread(target=pong, name="pong").start()
    inbox.put("ping")
    return outbox.get()

print("result", livekit.render_seq_trace(ping_pong, caption="One ping, one pong."))
"""


def run_script(tmp_path: Path, **env: str) -> str:
    script = tmp_path / "script.py"
    script.write_text(TRACED_SCRIPT, encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k != "LIVEKIT_TERMINAL"}
    environment.update(COLUMNS="100", **env)
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=environment,
    ).stdout


def test_a_script_that_renders_a_trace_prints_a_drawing_its_caption_and_how_to_save_it(
    tmp_path: Path,
) -> None:
    assert run_script(tmp_path) == textwrap.dedent(
        """\
        One ping, one pong.

        caller (MainThread) → pong               : SPAWN
        caller (MainThread) → pong               : 'ping'
        pong                → caller (MainThread): 'PING'
        pong                : EXIT: normal

        Save it as a page: diagram.save("diagram.html")
        result PING
        """
    )


def test_a_script_gets_mermaid_source_when_livekit_terminal_is_mermaid(tmp_path: Path) -> None:
    out = run_script(tmp_path, LIVEKIT_TERMINAL="mermaid")
    assert out.startswith("%% One ping, one pong.\nsequenceDiagram\n")
    assert "    p1->>p0: 'PING'\n" in out
    assert out.endswith("result PING\n")


def test_the_terminal_shows_the_caption_the_drawing_and_the_save_hint() -> None:
    diagram = Mermaid(SOURCE, caption="a pings b", text=lambda: "a → b: ping\nb → a: pong")
    assert diagram.terminal() == (
        'a pings b\n\na → b: ping\nb → a: pong\n\nSave it as a page: diagram.save("diagram.html")'
    )
    assert diagram.terminal(hint="Or not.") == "a pings b\n\na → b: ping\nb → a: pong\n\nOr not."


def test_the_drawing_is_made_only_when_a_terminal_shows_it() -> None:
    calls: list[int] = []

    def drawing() -> str:
        calls.append(1)
        return "a → b"

    diagram = Mermaid(SOURCE, text=drawing)
    assert str(diagram) == SOURCE
    diagram._repr_mimebundle_()
    assert calls == []
    assert diagram.terminal() == f"\n\na → b\n\n{SAVE_HINT}"
    assert calls == [1]


def test_a_diagram_without_a_drawing_shows_its_source_in_a_terminal() -> None:
    assert Mermaid(SOURCE, caption="c").terminal() == f"%% c\n{SOURCE}"


def test_livekit_terminal_mermaid_shows_the_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEKIT_TERMINAL", "mermaid")
    assert Mermaid(SOURCE, caption="c", text=lambda: "a → b").terminal() == f"%% c\n{SOURCE}"


def test_a_bad_livekit_terminal_value_is_refused_naming_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LIVEKIT_TERMINAL", "svg")
    with pytest.raises(
        ValueError, match=r"^expected LIVEKIT_TERMINAL to be 'text' or 'mermaid', got 'svg'$"
    ):
        Mermaid(SOURCE, text=lambda: "a → b").terminal()


def test_a_drawing_that_is_not_callable_is_refused() -> None:
    with pytest.raises(
        TypeError, match=r"^text must be a function returning a str, or None, got str: 'a'$"
    ):
        Mermaid(SOURCE, text="a")  # type: ignore[arg-type]


def test_a_notebook_output_is_valid_nbformat() -> None:
    import nbformat

    data, metadata = Mermaid(SOURCE, caption="c")._repr_mimebundle_()
    output = nbformat.v4.new_output("display_data", data=data, metadata=metadata)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x", outputs=[output])])
    nbformat.validate(notebook)
    written = json.loads(nbformat.writes(notebook))["cells"][0]["outputs"][0]["data"]
    assert {mime: "".join(lines) for mime, lines in written.items()} == data


def test_a_caption_holding_a_directive_stays_a_comment_in_the_source() -> None:
    diagram = Mermaid("graph LR\n  a --> b", caption="tree of %%{init: {'theme':'dark'}}%%")
    text = diagram.text()
    assert "%%{" not in text
    assert text.splitlines()[0] == "%% tree of #37;#37;{init: {'theme':'dark'}}#37;#37;"
