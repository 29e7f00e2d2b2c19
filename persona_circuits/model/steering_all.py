"""Every-layer steering: one coefficient, each block's own persona direction added after each block.

One-layer steering (:class:`~persona_circuits.model.interventions.ResidualSteering`) adds ``c · v_L`` to the residual
stream after one block ``L``. :class:`AllLayerSteering` adds ``c · v_l`` after *every* block ``l``, where
``v_l`` is that block's own difference of the two poles' mean residuals (``[n_layers, d_model]``,
:func:`~persona_circuits.measure.baselines.steering_vectors`); the vectors are used as they are (not normalised), so
each block is pushed in proportion to how far apart the poles already are there. Pole A gets ``+c``, pole B
``−c`` (:func:`~persona_circuits.measure.damage.all_layer_steering_dial`).

The hooks sit on the bridge's ``blocks.{l}.hook_out`` (registered as mirrored) and on the output of the same
decoder layer of the plain module, as for one-layer steering; nothing is replayed (block 0 is steered).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from jaxtyping import Float
from torch import Tensor

from .hooks import block_out
from .loading import Model
from .plain import decoder_layers, mirrored_hook, plain_model


class AllLayerSteering:
    """Adds ``coef · vectors[l]`` to the residual stream after every block ``l``."""

    def __init__(self, vectors: Float[Tensor, "n_layers d_model"], coef: float) -> None:
        if vectors.ndim != 2:
            raise ValueError(f"every-layer steering needs [n_layers, d_model] vectors, got {tuple(vectors.shape)}")
        self.vectors, self.coef = vectors, coef

    def add_fn(self, layer: int):
        v = self.vectors[layer]

        def add(x: Tensor) -> Tensor:
            return x + self.coef * v.to(x.device, x.dtype)

        return add

    def attach(self, model: Model):
        """The context manager that keeps these hooks on ``model`` (:func:`all_layer_steering`)."""
        return all_layer_steering(model, self)

    def hooks(self) -> list:
        return [(block_out(l), (lambda add: lambda x, hook: add(x))(self.add_fn(l))) for l in range(len(self.vectors))]


def _output_hook(add):
    def hook(module, args, out):
        if isinstance(out, Tensor):
            return add(out)
        return (add(out[0]), *out[1:])

    return hook


@contextlib.contextmanager
def all_layer_steering(model: Model, steer: AllLayerSteering) -> Iterator:
    """Keep an :class:`AllLayerSteering` on ``model`` (bridge hook points, mirrored on the plain module)."""

    n = model.cfg.n_layers
    if len(steer.vectors) != n:
        raise ValueError(f"every-layer steering needs {n} vectors, got {len(steer.vectors)}")
    plain = plain_model(model)
    with contextlib.ExitStack() as stack:
        if plain is None:
            stack.enter_context(model.hooks(fwd_hooks=steer.hooks()))
        else:
            layers = decoder_layers(plain)
            for l in range(n):
                add = steer.add_fn(l)
                stack.enter_context(mirrored_hook(model, model.hook_dict[block_out(l)], lambda m, a, out, add=add: add(out)))
                stack.callback(layers[l].register_forward_hook(_output_hook(add)).remove)
        yield model
