"""The overlap atlas of a study's persona sets (a stage after every set): which sets share top contrastive
weights and steering directions beyond chance (:mod:`persona_circuits.analysis.atlas`: Jaccard overlap of
each set's top weights against random masks of the same per-row density and against label-swapped nulls,
steering directions: one test per pair, the maximum over layers of |cos| against the same maximum of the
label-swapped directions, Holm over the pairs; each set's draws from its own seed, ``nulls.swap`` swaps). No forward pass beyond
the calibration of the sets that join only the atlas (``atlas.extra_sets``)."""

from __future__ import annotations

from dataclasses import dataclass

from ..results import Atlas
from .config import SETTINGS
from .stage import stage
from .state import Study


@dataclass
class AtlasInput:
    """One set as the atlas sees it: both poles' signatures and per-text statistics (with residuals)."""

    name: str
    sigs: dict
    stats: dict
    identity_: dict

    def identity(self) -> dict:
        return self.identity_


def atlas_input(run) -> AtlasInput:
    """From a set's :class:`~.setup.SetRun`: the first ``n_calib`` texts of each pole."""
    return AtlasInput(run.name, run.sigs, {p: run.stats[p].head(run.n_calib) for p in run.poles}, run.identity())


def extra_inputs(study: Study) -> list[AtlasInput]:
    """The sets that join only the atlas (``atlas.extra_sets``: names or paths), calibrated like every set."""
    from dataclasses import replace

    from .sets import study_sets
    from .setup import calibration

    specs = study.cfg.atlas.extra_sets
    if not specs:
        return []
    if study.data_root is None:
        from .state import log

        log(f"atlas: no --data-root, so the atlas-only sets ({', '.join(specs)}) are left out")
        return []
    cfg = study.cfg
    out = []
    for sset in study_sets(replace(cfg, sets=replace(cfg.sets, sets=tuple(specs))), study.data_root):
        n = min(cfg.sets.calib_size, len(sset.ps.calibration))
        with study.timed(f"{sset.name}: calibration (atlas only)"):
            stats = {p: calibration(study, sset=sset, pole=p, n=n) for p in sset.poles}
        h = sset.ps.subset(n).content_hash()
        sigs = {p: stats[p].signature(pole=p, dataset=sset.name, calibration_hash=h) for p in sset.poles}
        out.append(AtlasInput(sset.name, sigs, stats, {"set": sset.identity(), "n_calib": n, "atlas_only": True}))
    return out


@stage("atlas", settings=(SETTINGS.atlas.fraction, SETTINGS.atlas.null_draws, SETTINGS.masks.modules, SETTINGS.nulls.swap),
       version=2, result=Atlas)
def atlas_stage(study: Study, *, sets: list[AtlasInput]) -> Atlas:
    """The atlas of ``sets`` (see the module docstring)."""
    from ..analysis.atlas import atlas, atlas_record

    a = study.cfg.atlas
    full = atlas(study.model, {s.name: list(s.sigs.values()) for s in sets},
                 per_text={s.name: list(s.stats.values()) for s in sets}, fraction=a.fraction, null_draws=a.null_draws,
                 seed=study.cfg.seed, modules=study.cfg.masks.modules, swap=study.cfg.nulls.swap)
    return atlas_record(full)
