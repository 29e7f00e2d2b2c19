"""One persona set's shared state: calibration, signatures, label-swapped nulls, masks, steering.

:func:`prepare_set` records (or reads from the cache) each pole's per-text statistics and residual features
in one pass (:func:`~persona_circuits.masks.statistics.record_per_text`), and derives from them, without another
forward pass, what every later stage of the set uses: the signatures of the first ``calib_size`` texts,
the masks of the per-set comparison and the steering vector. It returns a :class:`SetRun`, an in-memory
object handed to the stages (never written); its :meth:`SetRun.identity` is the set's identity plus every
setting that shaped it.

**Label-swapped null draws** (:class:`NullDraw`, :meth:`SetRun.null_draw`) are made on demand from a seed, with
the study's swap design (``nulls.swap``, :func:`~persona_circuits.measure.nulls.label_swap_indices`), out of the same
per-text statistics (no forward pass). Every consumer derives its own seeds
(:func:`~persona_circuits.measure.nulls.derive_seed` of the study seed and its identity: :meth:`SetRun.draw_seed`), so
the curves, each matched row, the paper table and the analysis gate use independent draws. A stage that uses a
draw takes its seed as an input, so the seed is part of its cache key.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from torch import Tensor

from ..analysis.gate import GateSelections
from ..results import SteeringChoice
from .config import MAIN_METHODS, SETTINGS
from .sets import StudySet
from .stage import stage
from .state import Study


@dataclass
class NullDraw:
    """One label-swapped draw of a set: both pseudo-poles' signatures (keyed by the real pole names) and the
    difference of their mean residuals at every layer (pseudo-pole A minus B, ``[n_layers, d_model]``), from the
    same swap indices. ``directions[layer]`` is the steering null at ``layer``."""

    seed: int
    swap: str
    sigs: dict
    directions: Tensor

    def identity(self) -> dict:
        return {"seed": self.seed, "swap": self.swap}


#: How many draws a run keeps (a draw holds two signatures; most are used by one cached stage only).
DRAW_CACHE = 8


@dataclass
class SetRun:
    """What the stages of one set share (see the module docstring)."""

    sset: StudySet
    n_calib: int
    shaping: dict
    stats: dict  # pole -> PerTextStats (every recorded text, with residuals)
    sigs: dict  # pole -> ActivationSignature of the first n_calib texts
    masks: dict  # method -> pole -> Mask, at the study's sparsity
    seed: int = 0  # the study seed (every draw seed derives from it)
    swap: str = "balanced"  # nulls.swap
    calibration_hash: str = ""
    n_null: int = 0  # draws of the analysis gate (max of curve_draws and matched_draws)
    steering: SteeringChoice | None = None  # the steering layer and coefficient (:func:`prepare_set`)
    vector: Tensor | None = None
    directions: Tensor | None = None  # [n_layers, d_model] pole A minus pole B mean residual after every block
    scores: dict = field(default_factory=dict)  # condition -> ChoiceScores on every held-out item
    dials: object = None  # the headline's strength dials (study.dials.Dials), made once per run
    gate_bits: GateSelections | None = None  # the projection gate's packed selected sets (study.gate_analysis), for the atlas of sets
    released_sft: list | None = None  # the matching pole's LoRA under the released scoring (AI sets)
    _null_cw: list | None = None
    _draws: OrderedDict = field(default_factory=OrderedDict)
    _both: tuple | None = None  # (per-text stats of A then B, residuals of A then B), first n_calib texts

    @property
    def name(self) -> str:
        return self.sset.name

    @property
    def ps(self):
        return self.sset.ps

    @property
    def poles(self) -> list[str]:
        return self.sset.poles

    def identity(self) -> dict:
        return {"set": self.sset.identity(), **self.shaping}

    def release(self) -> None:
        """Drop what only this set's stages use (the dials hold the run: a reference cycle that would keep
        its masks alive until the cyclic collector ran)."""
        self.dials, self._null_cw, self.scores, self._both = None, None, {}, None
        self._draws.clear()

    def draw_seed(self, *parts) -> int:
        """The seed of one draw of this set: :func:`~persona_circuits.measure.nulls.derive_seed` of the study seed, the
        set's name and ``parts`` (e.g. ``("matched", method, target, k)``)."""
        from ..measure.nulls import derive_seed

        return derive_seed(self.seed, self.name, *parts)

    def null_draw(self, seed: int) -> NullDraw:
        """The label-swapped draw of ``seed`` (``nulls.swap``), from the per-text statistics of the first
        ``n_calib`` texts (no forward pass); the last :data:`DRAW_CACHE` draws are kept."""
        if seed in self._draws:
            self._draws.move_to_end(seed)
            return self._draws[seed]
        import torch

        from ..measure.nulls import label_swap_indices

        if self._both is None:
            a, b = (self.stats[p].head(self.n_calib) for p in self.poles)
            self._both = (a.concat(b), torch.cat([self.stats[p].resid[: self.n_calib] for p in self.poles]))
        both, resid = self._both
        ia, ib = label_swap_indices(self.n_calib, seed, self.swap)
        h = f"{self.calibration_hash}:swap{seed}:{self.swap}"
        sigs = {p: both.signature(i, pole=p, dataset=self.name, calibration_hash=h) for p, i in zip(self.poles, (ia, ib))}
        draw = NullDraw(int(seed), self.swap, sigs, resid[ia].mean(0) - resid[ib].mean(0))
        self._draws[seed] = draw
        while len(self._draws) > DRAW_CACHE:
            self._draws.popitem(last=False)
        return draw

    def null_cw(self, model, cfg, draw: NullDraw) -> dict:
        """Contrastive-Wanda masks of ``draw`` at the study's sparsity (the soft-mask dial's null)."""
        from ..masks.registry import build_masks

        m = cfg.masks
        return build_masks(model, "contrastive-wanda", draw.sigs, sparsity=m.sparsity, statistic=m.statistic,
                           modules=m.modules)

    def null_cw_masks(self, model, cfg) -> list:
        """Contrastive-Wanda masks of the ``n_null`` draws of the restore ablation's gate (own seeds, built on
        first use)."""
        if self._null_cw is None:
            self._null_cw = [self.null_cw(model, cfg, self.null_draw(self.draw_seed("analysis-gate", k)))
                             for k in range(self.n_null)]
        return self._null_cw


@stage("calibration", settings=(SETTINGS.masks.modules,), store="torch", version=2)
def calibration(study: Study, *, sset: StudySet, pole: str, n: int):
    """Per-text statistics (at ``sset.tokens``) and mean answer-token residuals of a pole's first ``n``
    calibration texts."""
    from ..masks.statistics import record_pairs

    return record_pairs(study.model, sset.ps.calibration_pairs(pole)[:n], tokens=sset.tokens,
                        batch_size=study.cfg.batch_size, modules=study.cfg.masks.modules, residuals=True,
                        progress=f"{sset.name}/{pole} calibration" if study.progress else False)


@stage("steer-select", settings=(SETTINGS.baselines.steer_layers_frac, SETTINGS.baselines.steer_coefs, SETTINGS.baselines.steer_items),
       result=SteeringChoice)
def steer_select(study: Study, *, sset: StudySet, vectors: Tensor, layers: list[int]) -> SteeringChoice:
    """The steering layer and coefficient, chosen on calibration items only (``select_steering``)."""
    from ..measure.baselines import select_steering

    b = study.cfg.baselines
    return select_steering(study.model, sset.ps, vectors[layers], layers, b.steer_coefs, n_items=b.steer_items,
                           batch_size=study.cfg.batch_size)


def _steering(study: Study, run: SetRun, chosen: SteeringChoice | None = None) -> None:
    from ..measure.baselines import steering_vectors

    b, n_layers = study.cfg.baselines, study.model.cfg.n_layers
    a, bb = (run.stats[p].resid[: run.n_calib] for p in run.poles)
    vecs = steering_vectors(a, bb)
    layers = sorted({min(n_layers - 1, int(round(f * (n_layers - 1)))) for f in b.steer_layers_frac})
    if chosen is not None:  # chosen by the set's own run (its shard): the cross-set shard reuses it
        run.steering = chosen
    elif len(layers) * len(b.steer_coefs) == 1:  # one candidate: nothing to select
        run.steering = SteeringChoice(layer=layers[0], coef=float(b.steer_coefs[0]), table=[])
    else:
        run.steering = steer_select(study, sset=run.sset, vectors=vecs, layers=layers)
    run.vector, run.directions = vecs[run.steering.layer], vecs


def prepare_set(study: Study, sset: StudySet, steering: SteeringChoice | None = None) -> SetRun:
    """Calibration, signatures, masks and steering of one set (see the module docstring).

    Args:
        steering: the steering choice the set's own run made, to reuse it
            instead of selecting it again (the cross-set shard); ``None``: selected here (a cached stage)."""
    from ..masks.registry import build_masks

    cfg = study.cfg
    n_rec = max(cfg.sets.calib_size, cfg.sets.calib_record if sset.name == cfg.sets.analysis_set else 0)
    n_rec = min(n_rec, len(sset.ps.calibration))
    n_calib = min(cfg.sets.calib_size, n_rec)
    n_null = max(cfg.nulls.curve_draws, cfg.nulls.matched_draws)
    with study.timed(f"{sset.name}: calibration"):
        stats = {p: calibration(study, sset=sset, pole=p, n=n_rec) for p in sset.poles}
    h = sset.ps.subset(n_calib).content_hash()
    heads = {p: stats[p].head(n_calib) for p in sset.poles}
    sigs = {p: heads[p].signature(pole=p, dataset=sset.name, calibration_hash=h) for p in sset.poles}
    m = cfg.masks
    with study.timed(f"{sset.name}: masks"):
        masks = {meth: build_masks(study.model, meth, sigs, sparsity=m.sparsity, statistic=m.statistic, modules=m.modules)
                 for meth in MAIN_METHODS}
    shaping = {"n_record": n_rec, "n_calib": n_calib, "n_null": n_null, "masks": vars(m).copy(), "seed": cfg.seed,
               "swap": cfg.nulls.swap}
    run = SetRun(sset, n_calib, shaping, stats, sigs, masks, seed=cfg.seed, swap=cfg.nulls.swap, calibration_hash=h,
                 n_null=n_null)
    with study.timed(f"{sset.name}: steering"):
        _steering(study, run, steering)
    run.shaping["steering"] = {"layer": run.steering.layer, "coef": run.steering.coef}  # part of the run's identity
    return run

