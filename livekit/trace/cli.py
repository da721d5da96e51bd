"""``livekit trace``: run a script under a sequence trace, as ``python`` would.

    livekit trace [-o OUT] [--max-messages N] [--caption TEXT] script.py [args...]
    livekit trace [-o OUT] ... -m module [args...]

The script runs in this interpreter as ``__main__``, with its own
``sys.argv``; its output, and its exit status, are its own.  When it ends,
the trace is written to ``OUT`` (``.html``, ``.mmd`` or ``.json``, see
:meth:`livekit.SequenceTrace.save`) or, without ``-o``, drawn as text on
standard error, where it does not mix with what the script prints.  A script
that raises still gets its partial trace written, then the command exits 1.
"""

from __future__ import annotations

import argparse
import os
import runpy
import shlex
import sys
import traceback
from pathlib import Path
from typing import Any

#: What ``--max-messages`` is when not given: a drawing stays readable with
#: a few hundred arrows; a file for Perfetto wants every message.
DRAWING_MESSAGES = 500
FILE_MESSAGES = 1_000_000

_SUFFIXES = (".html", ".mmd", ".json")


def add_parser(subparsers: Any) -> None:
    """Add the ``trace`` subcommand to the ``livekit`` command's parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="livekit")
    >>> add_parser(parser.add_subparsers())
    >>> args = parser.parse_args(["trace", "-o", "t.json", "job.py", "--fast", "-o", "x"])
    >>> args.output, args.command
    ('t.json', ['job.py', '--fast', '-o', 'x'])
    >>> parser.parse_args(["trace", "-m", "http.server", "-b", "127.0.0.1"]).module
    ['http.server', '-b', '127.0.0.1']
    """
    parser = subparsers.add_parser(
        "trace",
        help="run a Python script under a sequence trace and draw or save its messages",
        description=(
            "Run a script (or -m module) under livekit's sequence trace, then draw the "
            "messages its threads, tasks and processes exchanged, or save them to a file."
        ),
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="OUT",
        help=(
            "write the trace here: .html (a page that opens offline), .mmd (Mermaid source) "
            "or .json (Trace Event Format, for Perfetto); default: draw it as text"
        ),
    )
    parser.add_argument(
        "--max-messages",
        type=int,
        metavar="N",
        help=f"keep at most N arrows (default: {DRAWING_MESSAGES}, or {FILE_MESSAGES:,} for .json)",
    )
    parser.add_argument("--caption", metavar="TEXT", help="the diagram's caption")
    parser.add_argument(
        "-m",
        dest="module",
        nargs=argparse.REMAINDER,
        metavar="MODULE",
        help="run a library module as a script, as python -m does",
    )
    parser.add_argument(
        "command", nargs=argparse.REMAINDER, metavar="script.py [args...]", help="the script"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Trace the script or module that ``args`` names; return its exit status."""
    try:
        output, max_messages, argv, module = _check(args)
    except ValueError as error:
        print(f"livekit trace: {error}", file=sys.stderr)
        return 2
    from livekit.trace import SequenceTrace

    target = module or Path(argv[0]).name
    trace = SequenceTrace(max_messages=max_messages, caption=args.caption, target=target)
    status = _run_traced(trace, argv, module)
    try:
        if output is None:
            _draw(trace, output_hint=shlex.join(argv if module is None else ["-m", *argv]))
        else:
            trace.save(output)
            print(
                f"livekit trace: wrote {len(trace.events)} events to {output}",
                file=sys.stderr,
            )
    except OSError as error:
        print(f"livekit trace: cannot write the trace: {error}", file=sys.stderr)
        return status or 1
    return status


def _check(args: argparse.Namespace) -> tuple[Path | None, int, list[str], str | None]:
    output = Path(args.output) if args.output else None
    if output is not None and output.suffix.lower() not in _SUFFIXES:
        raise ValueError(f"expected -o to end in {', '.join(_SUFFIXES)}, got {args.output!r}")
    default = FILE_MESSAGES if output is not None and output.suffix == ".json" else DRAWING_MESSAGES
    max_messages = default if args.max_messages is None else args.max_messages
    if max_messages < 1:
        raise ValueError(f"expected --max-messages to be a positive number, got {max_messages}")
    if args.module:
        module, *rest = args.module
        return output, max_messages, [module, *rest], module
    if not args.command:
        raise ValueError("expected a script to run (livekit trace script.py, or -m module)")
    script = Path(args.command[0])
    if not script.is_file():
        raise ValueError(f"expected a Python script, got {args.command[0]!r}: no such file")
    return output, max_messages, list(args.command), None


def _run_traced(trace: Any, argv: list[str], module: str | None) -> int:
    """Run the script as ``__main__`` inside ``trace``; return its exit status."""
    saved_argv = sys.argv
    sys.argv = list(argv)
    # As python does: the script's folder, or for -m the current one, comes first.
    first = os.getcwd() if module is not None else str(Path(argv[0]).resolve().parent)
    sys.path.insert(0, first)
    try:
        with trace:
            if module is None:
                runpy.run_path(argv[0], run_name="__main__")
            else:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as leaving:
        return _exit_status(leaving.code)
    except KeyboardInterrupt:
        traceback.print_exc()
        return 130
    except BaseException:  # the script's own error, reported as python reports it
        traceback.print_exc()
        return 1
    finally:
        # The trace has ended in its own `finally`; put the interpreter back.
        sys.argv = saved_argv
        if sys.path and sys.path[0] == first:
            del sys.path[0]
    return 0


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _draw(trace: Any, *, output_hint: str) -> None:
    hint = f"Save it as a page: livekit trace -o trace.html {output_hint}"
    print(trace.diagram.terminal(hint=hint), file=sys.stderr)
