"""What the command line and the ``reproduce`` sub-command share: loading the model the global options name."""

from __future__ import annotations


def load_model_from_args(args):
    """The model named by the global options ``--model``, ``--device``, ``--dtype``, ``--device-map`` and
    ``--no-progress`` (every command loads it this way)."""
    from .models import load_model, parse_device_map

    if args.no_progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    return load_model(args.model, device=args.device, dtype=args.dtype,
                      device_map=parse_device_map(getattr(args, "device_map", None)), progress=not args.no_progress)
