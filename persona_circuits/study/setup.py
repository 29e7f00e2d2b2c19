"""One persona set's shared state: calibration, signatures, label-swapped nulls, masks, steering.

:func:`prepare_set` records (or reads from the cache) each pole's per-text statistics and residual features
in one pass (:func:`~persona_circuits.statistics.record_per_text`), and derives from them, without another
forward pass, what every later stage of the set uses: the signatures of the first ``calib_size`` texts,
the label-swapped signature pairs and steering directions, the masks of the per-set comparison and the
steering vector. It returns a :class:`SetRun`, an in-memory object handed to the stages (never written);
its :meth:`SetRun.identity` is the set's identity plus every setting that shaped it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from .config import MAIN_METHODS
from .sets import StudySet
from .stage import stage
from .state import Study


@dataclass
class SetRun:
    """What the stages of one set share (see the module docstring)."""

    sset: StudySet
    n_calib: int
    shaping: dict
    stats: dict  # pole -> PerTextStats (every recorded text, with residuals)
    sigs: dict  # pole -> ActivationSignature of the first n_calib texts
    null_sigs: list  # label-swapped signature pairs
    masks: dict  # method -> pole -> Mask, at the study's sparsity
    steering: dict = field(default_factory=dict)  # {"layer", "coef", "table"}
    vector: Tensor | None = None
    null_vectors: Tensor | None = None  # [K, d_model] label-swapped directions at the steering layer
    scores: dict = field(default_factory=dict)  # condition -> ChoiceScores on every held-out item
    dials: object = None  # the headline's strength dials (study.headline.Dials), made once per run
    released_sft: list | None = None  # the matching pole's LoRA under the released scoring (AI sets)
    _null_cw: list | None = None

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
        self.dials, self._null_cw, self.scores = None, None, {}

    def null_cw_masks(self, model, cfg) -> list:
        """Contrastive-Wanda masks of every label-swapped pair at the study's sparsity (built on first use):
        the soft-mask dial's nulls and the restore ablation's gate."""
        if self._null_cw is None:
            from ..masks import build_masks

            m = cfg.masks
            self._null_cw = [build_masks(model, "contrastive-wanda", ns, sparsity=m.sparsity, statistic=m.statistic,
                                         modules=m.modules) for ns in self.null_sigs]
        return self._null_cw


@stage("calibration", settings=("masks.modules",), store="torch", version=2)
def calibration(study: Study, *, sset: StudySet, pole: str, n: int):
    """Per-text statistics (at ``sset.tokens``) and mean answer-token residuals of a pole's first ``n``
    calibration texts."""
    from ..statistics import record_pairs

    return record_pairs(study.model, sset.ps.calibration_pairs(pole)[:n], tokens=sset.tokens,
                        batch_size=study.cfg.batch_size, modules=study.cfg.masks.modules, residuals=True,
                        progress=f"{sset.name}/{pole} calibration" if study.progress else False)


@stage("steer-select", settings=("baselines.steer_layers_frac", "baselines.steer_coefs", "baselines.steer_items"))
def steer_select(study: Study, *, sset: StudySet, vectors: Tensor, layers: list[int]) -> dict:
    """The steering layer and coefficient, chosen on calibration items only (``select_steering``)."""
    from dataclasses import asdict

    from ..baselines import select_steering

    b = study.cfg.baselines
    return asdict(select_steering(study.model, sset.ps, vectors[layers], layers, b.steer_coefs, n_items=b.steer_items,
                                  batch_size=study.cfg.batch_size))


def _steering(study: Study, run: SetRun, chosen: dict | None = None) -> None:
    from ..baselines import steering_vectors
    from ..nulls import label_swapped_directions

    b, n_layers = study.cfg.baselines, study.model.cfg.n_layers
    a, bb = (run.stats[p].resid[: run.n_calib] for p in run.poles)
    vecs = steering_vectors(a, bb)
    layers = sorted({min(n_layers - 1, int(round(f * (n_layers - 1)))) for f in b.steer_layers_frac})
    if chosen is not None:  # chosen by the set's own run (its shard): the cross-set shard reuses it
        run.steering = chosen
    elif len(layers) * len(b.steer_coefs) == 1:  # one candidate: nothing to select
        run.steering = {"layer": layers[0], "coef": float(b.steer_coefs[0]), "table": []}
    else:
        run.steering = steer_select(study, sset=run.sset, vectors=vecs, layers=layers)
    run.vector = vecs[run.steering["layer"]]
    run.null_vectors = label_swapped_directions(a, bb, draws=len(run.null_sigs), seed=study.cfg.seed)[:, run.steering["layer"]]


def prepare_set(study: Study, sset: StudySet, steering: dict | None = None) -> SetRun:
    """Calibration, signatures, label-swapped nulls, masks and steering of one set (see the module docstring).

    Args:
        steering: the steering choice (``{"layer", "coef", "table"}``) the set's own run made, to reuse it
            instead of selecting it again (the cross-set shard); ``None``: selected here (a cached stage)."""
    from ..masks import build_masks
    from ..nulls import label_swapped_signatures

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
    null_sigs = label_swapped_signatures(*heads.values(), draws=n_null, seed=cfg.seed, poles=sset.poles,
                                         dataset=sset.name, calibration_hash=h)
    m = cfg.masks
    with study.timed(f"{sset.name}: masks"):
        masks = {meth: build_masks(study.model, meth, sigs, sparsity=m.sparsity, statistic=m.statistic, modules=m.modules)
                 for meth in MAIN_METHODS}
    shaping = {"n_record": n_rec, "n_calib": n_calib, "n_null": n_null, "masks": vars(m).copy(), "seed": cfg.seed}
    run = SetRun(sset, n_calib, shaping, stats, sigs, null_sigs, masks)
    with study.timed(f"{sset.name}: steering"):
        _steering(study, run, steering)
    run.shaping["steering"] = {"layer": run.steering["layer"], "coef": run.steering["coef"]}
    return run

