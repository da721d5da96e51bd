"""``livekit attach`` and ``livekit detach``: the command line of :mod:`livekit.attaching`.

    livekit attach PID [--name NAME] [--timeout SECONDS]
    livekit attach --dump PID
    livekit detach NAME

``attach`` prints the node's name on a line of its own, then how long the
target was held, on standard error. ``--dump`` prints the Mermaid source
of the target's threads and stacks, read without running code there.
A failure prints its reason and what to do, and exits with status 1.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from livekit.attaching.errors import AttachError


def add_parser(subparsers: Any) -> None:
    """Add the ``attach`` and ``detach`` subcommands to the ``livekit`` command's parser.

    Examples
    --------
    >>> parser = argparse.ArgumentParser(prog="livekit")
    >>> add_parser(parser.add_subparsers())
    >>> args = parser.parse_args(["attach", "4242", "--name", "web"])
    >>> args.pid, args.name, args.dump, args.timeout
    (4242, 'web', False, 10.0)
    >>> parser.parse_args(["detach", "web@box"]).name
    'web@box'
    """
    attach = subparsers.add_parser(
        "attach",
        help="make a running Python process a node, without changing its code",
        description=(
            "Make the running CPython process PID (yours, on this host, of this Python "
            "version) a livekit node and print its name. With --dump, only draw its "
            "threads and stacks, running nothing in it."
        ),
    )
    attach.add_argument("pid", type=int, help="the process id")
    attach.add_argument("--name", help="the node's short name (default: python<PID>)")
    attach.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for the node (default: 10)"
    )
    attach.add_argument(
        "--dump",
        action="store_true",
        help="print the process's threads and stacks as a Mermaid tree, read-only",
    )
    attach.set_defaults(handler=run_attach)
    detach = subparsers.add_parser(
        "detach",
        help="stop a node that `livekit attach` started",
        description="Stop the node NAME started by `livekit attach`; the process runs on.",
    )
    detach.add_argument("name", help="the node's name, as `livekit attach` printed it")
    detach.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for it (default: 10)"
    )
    detach.set_defaults(handler=run_detach)


def run_attach(args: argparse.Namespace) -> int:
    """Attach (or dump) and print the outcome; return the exit status."""
    from livekit.attaching import dump, inject

    try:
        if args.dump:
            print(dump(args.pid))
            return 0
        done = inject(args.pid, name=args.name, timeout=args.timeout)
    except (AttachError, ValueError, OSError) as error:
        reason = getattr(error, "reason", "failed")
        print(f"livekit attach: {reason}: {error}", file=sys.stderr)
        return 1
    print(done.name, flush=True)
    if done.existing:
        print(f"process {done.pid} was already node {done.name}", file=sys.stderr)
    else:
        print(
            f"attached to process {done.pid} (Python {done.python}) with {done.method} in "
            f"{done.elapsed:.2f} s; held it for {done.pause * 1000:.0f} ms",
            file=sys.stderr,
        )
    return 0


def run_detach(args: argparse.Namespace) -> int:
    """Detach and return the exit status."""
    from livekit.attaching import detach

    try:
        detach(args.name, timeout=args.timeout)
    except (AttachError, ValueError, OSError) as error:
        reason = getattr(error, "reason", "failed")
        print(f"livekit detach: {reason}: {error}", file=sys.stderr)
        return 1
    return 0
