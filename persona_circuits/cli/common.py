"""What the commands share: loading the model the global options name, argument checks, a mask's soft gate."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from ..errors import PersonaCircuitsError


def check_positive(name: str, v: int | None) -> None:
    """A count option (``None``: not given) must be at least 1."""
    if v is not None and v < 1:
        raise PersonaCircuitsError(f"{name} must be >= 1, got {v}")


def mask_gamma(mask, gamma: float | None) -> float:
    """The soft gate a mask is applied with: ``gamma`` if given, a projection-gate mask's own ``1 − s``, else 0."""
    if gamma is not None:
        return gamma
    return float(mask.config.extra["gamma"]) if mask is not None and mask.config.method == "projection-gate" else 0.0


_COMMAND: contextvars.ContextVar[contextlib.ExitStack | None] = contextvars.ContextVar("persona_command", default=None)


@contextlib.contextmanager
def command_scope() -> Iterator[None]:
    """The span of one command (:func:`~persona_circuits.cli.main.main`): what :func:`load_model_from_args`
    enters for its model (:func:`~persona_circuits.model.upcast.bf16_compute`) is left when the command returns."""
    with contextlib.ExitStack() as stack:
        token = _COMMAND.set(stack)
        try:
            yield
        finally:
            _COMMAND.reset(token)


def load_model_from_args(args):
    """The model named by the global options ``--model``, ``--device``, ``--dtype``, ``--device-map`` and
    ``--no-progress`` (every command loads it this way). A bfloat16 model on a CPU without native bfloat16
    has its matrix products computed in float32 until the command returns (:mod:`persona_circuits.model.upcast`);
    large tensors are kept in the heap (:mod:`persona_circuits.model.memory`)."""
    from ..model.loading import load_model, parse_device_map

    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    from ..model.memory import keep_large_allocations
    from ..model.upcast import bf16_compute

    keep_large_allocations()  # chunks of logits without page faults (persona_circuits.model.memory)
    model = load_model(args.model, device=args.device, dtype=args.dtype,
                       device_map=parse_device_map(getattr(args, "device_map", None)), progress=not args.no_progress)
    scope = _COMMAND.get()
    if scope is not None:  # until the command returns (main's command_scope)
        scope.enter_context(bf16_compute(model))
    return model
