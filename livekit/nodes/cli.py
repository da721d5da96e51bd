"""``livekit node``: run this interpreter as a node until interrupted.

    livekit node --name demo [--cookie C] [--host H] [--port P]

It prints the node's full name on a line of its own, then serves until
SIGINT (Ctrl-C) or SIGTERM, and stops cleanly: listener closed, links
ended, registry entry removed.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType
from typing import Any

from livekit._cli import add_address_options
from livekit.nodes.errors import NodeError
from livekit.nodes.local import start_node, stop_node


def add_parser(subparsers: Any) -> None:
    """Add the ``node`` subcommand to the ``livekit`` command's parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="livekit")
    >>> add_parser(parser.add_subparsers())
    >>> args = parser.parse_args(["node", "--name", "demo", "--port", "4370"])
    >>> args.name, args.cookie, args.host, args.port
    ('demo', None, '127.0.0.1', 4370)
    """
    parser = subparsers.add_parser(
        "node",
        help="run a node that other Python processes can connect to",
        description=(
            "Run this interpreter as a livekit node until interrupted, printing its name. "
            "Anyone holding its cookie can run any code in it."
        ),
    )
    parser.add_argument("--name", required=True, help="the node's short name, unique on this host")
    parser.add_argument(
        "--cookie",
        help="the cookie (default: ~/.livekit/cookie); visible to other users in `ps`",
    )
    add_address_options(
        parser,
        port=0,
        port_help="TCP port (default: any free port)",
        host_help="address to listen on (default: loopback only; see the docs before widening it)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Start the node, print its name, and serve until SIGINT or SIGTERM."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        try:
            name = start_node(args.name, cookie=args.cookie, host=args.host, port=args.port)
        except (NodeError, OSError, ValueError) as error:
            print(f"livekit node: {error}", file=sys.stderr)
            return 1
        print(name, flush=True)
        try:
            stop.wait()
        finally:
            stop_node()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0
