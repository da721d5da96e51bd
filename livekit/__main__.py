"""The ``livekit`` command (also ``python -m livekit``).

Each subcommand lives with the code it drives and registers itself here
through an ``add_parser(subparsers)`` function.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from livekit import __version__
from livekit.attaching import cli as _attach_cli
from livekit.kernel import cli as _serve_cli
from livekit.nodes import cli as _node_cli
from livekit.trace import cli as _trace_cli


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``livekit`` command.

    Examples
    --------
    >>> build_parser().prog
    'livekit'
    """
    parser = argparse.ArgumentParser(
        prog="livekit", description="Watch a running Python program from the inside."
    )
    parser.add_argument("--version", action="version", version=f"livekit {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in _SUBCOMMANDS:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``livekit`` command and return its exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    return int(handler(args))


# Subcommands add themselves here: each is a function that adds a subparser
# whose defaults set ``handler(args) -> int``.
_SUBCOMMANDS: list = []  # type: ignore[type-arg]
_SUBCOMMANDS.append(_serve_cli.add_parser)
_SUBCOMMANDS.append(_node_cli.add_parser)
_SUBCOMMANDS.append(_attach_cli.add_parser)

_SUBCOMMANDS.append(_trace_cli.add_parser)


if __name__ == "__main__":
    sys.exit(main())
