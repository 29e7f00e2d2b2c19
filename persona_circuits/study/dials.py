"""The headline's strength dials: one per method and signature pair (the real pair's and each label-swapped
draw's), shared by the curves, the matched-damage table, the gate's analyses and the 16 types' summaries.

A dial maps a strength (keep-mask sparsity, removed fraction, soft-mask strength ``1 − γ``, steering
coefficient, gate strength ``s``) to both poles' interventions (:mod:`persona_circuits.measure.damage`). The real dial
of each method is made once per set; a null dial comes from the label-swapped draw of a seed
(:meth:`~.setup.SetRun.null_draw`), with the same method recomputed from the draw's pseudo-poles.
"""

from __future__ import annotations

from ..results import Shift
from .config import SETTINGS
from .setup import SetRun
from .state import Study

#: Methods of the curves, in the order they are measured and drawn, and their grid settings.
CURVE_GRIDS = {"contrastive-wanda": SETTINGS.headline.keep_sparsities, "contrastive-removal": SETTINGS.headline.removal_fractions,
               "wanda": SETTINGS.headline.wanda_sparsities, "contrastive-sparse": SETTINGS.headline.sparse_sparsities,
               "soft-mask": SETTINGS.headline.soft_strengths, "steering": SETTINGS.headline.steer_coefs,
               "projection-gate": SETTINGS.headline.gate_strengths, "steering-all": SETTINGS.headline.steer_all_coefs,
               "gate-bias": SETTINGS.headline.gate_strengths}
CURVE_METHODS = tuple(CURVE_GRIDS)
#: What every headline stage reads: the damage texts and the masks' settings (through the dials).
DIAL_SETTINGS = (SETTINGS.damage, SETTINGS.masks)


class Dials:
    """The real dial of each method (one per method: a ranked dial sorts its scores once) and its null
    dials, made on demand (a ranked null dial holds its ranks, about 0.4 GB: the caller drops it)."""

    def __init__(self, study: Study, run: SetRun) -> None:
        from ..measure.nulls import random_directions

        self.study, self.run = study, run
        n = max(study.cfg.nulls.random_direction_draws, 1)
        self.random = random_directions(run.vector, draws=n, seed=study.cfg.seed + 7919)
        self._real: dict = {}
        self._null: dict = {}
        self._ranked: dict = {}  # id(signature pair) -> (pair, RankedContrast), shared by its keep and removal dials
        self._gates: dict = {}  # ids of (pair, directions) -> (pair, directions, projection-gate masks) (gate and gate-bias dials)

    def gate_masks(self, sigs, directions) -> dict:
        """The projection-gate masks of a signature pair and its directions (selected once per pair; kept: the
        first pair asked for, the real one, and the last, so that a draw's gate and gate-bias dials share one
        selection and the bool masks of every draw, 2 x n_writer_weights bytes each, are not all held)."""
        from ..masks.gate import projection_gate_masks

        key = (id(sigs), id(directions))
        if key not in self._gates:
            for old in list(self._gates)[1:]:
                del self._gates[old]
            pair = projection_gate_masks(self.study.model, *sigs.values(), directions, modules=self.study.cfg.masks.modules)
            # the pair is held with its masks: an id is only unique while its object lives
            self._gates[key] = (sigs, directions, dict(zip(sigs, pair)))
        return self._gates[key][2]

    def real(self, method: str):
        if method not in self._real:
            r = self.run
            self._real[method] = self._make(method, r.sigs, r.masks["contrastive-wanda"], r.vector, share=True,
                                            directions=r.directions)
        return self._real[method]

    def null(self, method: str, seed: int, kind: str = "label-swapped", keep: bool = False):
        """The null dial of the label-swapped draw ``seed`` (:meth:`~.setup.SetRun.null_draw`); ``keep``: kept for
        reuse (the curve's draws, also used by the strength-matched null), else made afresh. For
        ``kind="random-direction"``, ``seed`` is the index of a random direction of the persona vector's norm."""
        if kind == "random-direction":
            return self._make("steering", None, None, self.random[seed])
        key = (method, seed)
        if key in self._null:
            return self._null[key]
        r, model, cfg = self.run, self.study.model, self.study.cfg
        draw = r.null_draw(seed)
        # projection-gate and steering-all: the draw's pseudo-pole signatures and every layer's directions (the
        # same swap: SetRun.null_draw); the gate selects again from them
        dial = self._make(method, draw.sigs, r.null_cw(model, cfg, draw) if method == "soft-mask" else None,
                          draw.directions[r.steering.layer], share=keep, directions=draw.directions)
        if keep:
            self._null[key] = dial
        return dial

    def curve_seeds(self, method: str) -> list[int]:
        """The seeds of the curve's ``curve_draws`` draws of ``method`` (also the strength-matched null's)."""
        return [self.run.draw_seed("curve", method, k) for k in range(self.study.cfg.nulls.curve_draws)]

    def _make(self, method, sigs, cw_masks, vector, share: bool = False, directions=None):
        from ..measure.dials import all_layer_steering_dial, mask_dial, soft_mask_dial, steering_dial

        if method in ("projection-gate", "gate-bias"):  # the selected sets of this pair, a dial over the strength s
            from ..measure.dials import gate_bias_dial, gate_dial

            masks = self.gate_masks(sigs, directions)
            return gate_dial(masks) if method == "projection-gate" else gate_bias_dial(self.study.model, masks, sigs)
        if method == "steering-all":  # one coefficient, each block's own difference of means
            return all_layer_steering_dial(directions, lo=1e-4, hi=1e3)
        if method == "soft-mask":
            return soft_mask_dial(cw_masks)
        if method == "steering":  # a wide range: label-swapped directions are shorter than the persona's
            return steering_dial(vector, self.run.steering.layer, lo=1e-3, hi=1e4)
        m = self.study.cfg.masks
        ranked = None
        if share and method in ("contrastive-wanda", "contrastive-removal"):  # keep and removal: one sort
            from ..masks.ranked import RankedContrast

            key = id(sigs)
            if key not in self._ranked:  # held with its pair: an id is only unique while its object lives
                self._ranked[key] = (sigs, RankedContrast(self.study.model, *sigs.values(), modules=m.modules))
            ranked = self._ranked[key][1]
        return mask_dial(self.study.model, method, sigs, modules=m.modules, statistic=m.statistic, ranked=ranked)


def dials_of(study: Study, run: SetRun) -> Dials:
    """The set's :class:`Dials`, made once per set run (kept on the run; every stage that uses them declares
    :data:`DIAL_SETTINGS`)."""
    if run.dials is None:
        run.dials = Dials(getattr(study, "_study", study), run)
    return run.dials


def item_contrast(d, seed: int) -> Shift:
    """The contrast of per-item shifts ``d``: mean and share moved, each with its bootstrap interval over items
    (the fields a matched row, a reference point and a type row take)."""
    from ..measure.evaluation import contrast_from_items

    c = contrast_from_items(d, condition="", seed=seed)
    return Shift(n=c.n, shift=c.shift, shift_ci95=c.shift_ci95, moved=c.moved, moved_ci95=c.moved_ci95)
