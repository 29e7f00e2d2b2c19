"""Hook-point names and the one way to stop a forward pass early.

TransformerLens names the residual stream after block ``i`` ``blocks.{i}.hook_out`` and the final-normed
residual (the unembedding's input) ``unembed.hook_in``. A recording hook that has what it needs raises
:class:`StopForward` (e.g. from :func:`stop`), and the caller catches it: the blocks after it and the
unembedding are not computed.
"""

from __future__ import annotations

UNEMBED_IN = "unembed.hook_in"


class StopForward(Exception):
    """Raised by a hook to end a forward pass whose remaining computation is not needed."""


def block_out(i: int) -> str:
    """The hook point of the residual stream after block ``i``."""
    return f"blocks.{i}.hook_out"


def stop(x, hook):
    """A hook that ends the forward pass (see :class:`StopForward`)."""
    raise StopForward
