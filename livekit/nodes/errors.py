"""The exceptions of livekit's nodes and of :mod:`livekit.rpc`."""

from __future__ import annotations


class NodeError(ConnectionError):
    """A node could not be reached, or the link to it broke.

    The message says why: an unknown name, nothing listening, a failed
    authentication (the cookies differ), or a timeout.

    Examples
    --------
    >>> isinstance(NodeError("nothing is listening"), ConnectionError)
    True
    """


class RemoteError(Exception):
    """An exception raised on a node that could not be rebuilt in the caller.

    When the remote exception's class cannot be pickled, or is unknown in the
    caller (for instance it was defined in the node's ``__main__``), the
    caller raises this instead, with the remote class name and message.

    Examples
    --------
    >>> str(RemoteError("__main__.Oops: the sky fell"))
    '__main__.Oops: the sky fell'
    """


class RemoteTraceback(Exception):  # noqa: N818 -- a traceback, as concurrent.futures names it
    """The traceback of a remote exception, chained as its ``__cause__``.

    Printing the exception in the caller shows the node's traceback first,
    then the caller's, as a ``ProcessPoolExecutor`` does.

    Examples
    --------
    >>> print(RemoteTraceback("Traceback (most recent call last):\\n  ..."))
    <BLANKLINE>
    Traceback (most recent call last):
      ...
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return "\n" + self.text


class SerializationError(TypeError):
    """A value could not be pickled to cross between the caller and a node.

    Raised in the caller when its arguments, the node's result, or the
    function given to :func:`livekit.spawn` cannot be serialised.

    Examples
    --------
    >>> issubclass(SerializationError, TypeError)
    True
    """


# Shown as livekit.NodeError and livekit.rpc.RemoteError in tracebacks: the
# names a reader can import, not this module's.
NodeError.__module__ = "livekit"
for _error in (RemoteError, RemoteTraceback, SerializationError):
    _error.__module__ = "livekit.rpc"
del _error
