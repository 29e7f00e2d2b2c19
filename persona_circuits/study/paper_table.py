"""The paper's table, under the paper's own scoring (AI-persona tasks only).

The released evaluation (:mod:`persona_circuits.measure.released`): for the persona pole ("matching"),
each condition is scored with the persona system prompt in front (also while a mask is on), every answer
by its mean next-token loss over every token of ``[system] + question + answer``, the lower loss chosen;
accuracy = share of items where that is the matching answer. Conditions at the paper's operating points:
the Wanda mask at ``wanda_sparsity`` (the released default 0.5), the contrastive masks at
``contrastive_sparsity`` (0.3), each next to the same method built from ``null_draws`` label-swapped
calibration sets (own seeds per method: ``null_seed``) and next to a random mask with the same per-row
density; the persona prompt alone, RAG, LoRA and the dense model. Every number sits beside the paper's (read from the data's README).
"""

from __future__ import annotations

import numpy as np

from ..results import PaperTableRow
from .config import SETTINGS
from .conditions import rag_retriever, released_wins
from .setup import SetRun
from .stage import stage
from .state import Study

PAPER_METHODS = ("wanda", "contrastive-wanda", "contrastive-sparse")


def _operating_point(study: Study, method: str) -> float:
    p = study.cfg.paper
    return p.wanda_sparsity if method == "wanda" else p.contrastive_sparsity


@stage("paper-mask", settings=(SETTINGS.paper, SETTINGS.masks, SETTINGS.nulls.swap), version=2)
def paper_mask(study: Study, *, run: SetRun, method: str, draw: int | None) -> list[float]:
    """Released wins of ``method``'s matching-pole mask at the paper's operating point (``draw``: the seed of a
    label-swapped null draw, :meth:`~.setup.SetRun.null_draw`, instead of the real calibration data)."""
    from ..masks.build import wanda_mask
    from ..masks.registry import build_masks

    m = study.cfg.masks
    sigs = run.sigs if draw is None else run.null_draw(draw).sigs
    rho = _operating_point(study, method)
    if method == "wanda":  # a single-persona mask: only the matching pole's is needed
        mask = wanda_mask(study.model, sigs[run.poles[0]], sparsity=rho, statistic=m.statistic, modules=m.modules)
    else:
        mask = build_masks(study.model, method, sigs, sparsity=rho, statistic=m.statistic, modules=m.modules)[run.poles[0]]
    return released_wins(study, run, mask=mask)


@stage("paper-random", settings=(SETTINGS.paper, SETTINGS.masks), version=1)
def paper_random(study: Study, *, run: SetRun, sparsity: float) -> list[float]:
    """Released wins under a random mask of the operating point's sparsity (the same per-row density)."""
    from ..masks.build import random_mask

    return released_wins(study, run, mask=random_mask(study.model, sparsity=sparsity, modules=study.cfg.masks.modules,
                                                  seed=study.cfg.seed))


@stage("paper-baseline", settings=(SETTINGS.paper, SETTINGS.baselines.rag_k), version=1)
def paper_baseline(study: Study, *, run: SetRun, condition: str) -> list[float]:
    """Released wins of the dense model (no persona prompt), the persona prompt alone, and RAG."""
    if condition == "dense":
        return released_wins(study, run, system=False)
    if condition == "prompt":
        return released_wins(study, run)

    return released_wins(study, run, contexts=rag_retriever(run, run.poles[0], study.cfg.baselines.rag_k).contexts(run.ps.test))


def _row(condition: str, wins: list[float], seed: int, **fields) -> PaperTableRow:
    from ..measure.evaluation import bootstrap_ci

    w = np.asarray(wins)
    return PaperTableRow(condition=condition, scoring="released", pole="matching", accuracy=float(w.mean()),
                         accuracy_ci95=bootstrap_ci(w, seed=seed), n=int(len(w)), **fields)


def paper_table(study: Study, run: SetRun) -> list[PaperTableRow]:
    """Every row of one AI set's paper table (see the module docstring)."""
    from .matched import draw_seeds

    cfg = study.cfg
    k = cfg.paper.null_draws
    rows = [_row(c, paper_baseline(study, run=run, condition=c), cfg.seed) for c in ("dense", "prompt", "rag")]
    for method in PAPER_METHODS:
        rho = _operating_point(study, method)
        seed = run.draw_seed("paper", method)
        nulls = [float(np.mean(paper_mask(study, run=run, method=method, draw=d))) for d in draw_seeds(seed, k)]
        rows.append(_row(method, paper_mask(study, run=run, method=method, draw=None), cfg.seed,
                         operating_point={"sparsity": rho}, null_accuracies=nulls, null_seed=seed,
                         null_swap=cfg.nulls.swap))
    if run.released_sft is not None:
        rows.append(_row("sft", run.released_sft, cfg.seed))
    for rho in sorted({_operating_point(study, m) for m in PAPER_METHODS}):
        rows.append(_row("random-mask", paper_random(study, run=run, sparsity=rho), cfg.seed, operating_point={"sparsity": rho}))
    return rows
