"""What the ``livekit`` command's subcommands share."""

from __future__ import annotations

import argparse

#: Every server livekit starts binds this unless told otherwise.
LOOPBACK = "127.0.0.1"


def add_address_options(
    parser: argparse.ArgumentParser, *, port: int, port_help: str, host_help: str
) -> None:
    """Add ``--host`` (loopback by default) and ``--port`` to a subcommand.

    Examples
    --------
    >>> parser = argparse.ArgumentParser()
    >>> add_address_options(parser, port=0, port_help="port", host_help="address")
    >>> args = parser.parse_args(["--port", "8080"])
    >>> args.host, args.port
    ('127.0.0.1', 8080)
    """
    parser.add_argument("--host", default=LOOPBACK, help=host_help)
    parser.add_argument("--port", type=int, default=port, help=port_help)
