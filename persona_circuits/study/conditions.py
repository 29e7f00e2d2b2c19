"""One set's per-condition comparison: every condition on every held-out item (dense, persona prompt,
RAG, a random mask, the masks of every method at the study's sparsity, LoRA), each pole's accuracy, and
each condition's pole contrast with its damage (held-out neutral texts; prompt and RAG in chat format)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..measure.evaluation import ChoiceScores
from ..results import ChoiceRow, Contrast, HeldOutDamage, LoraRun
from .config import MAIN_METHODS, SETTINGS
from .setup import SetRun
from .stage import stage
from .state import Study

_MASK_SETTINGS = (SETTINGS.masks,)


def rag_retriever(run: SetRun, pole: str, k: int):
    """The RAG retriever of ``pole``: its calibration answers of the set's first ``n_calib`` items, top ``k``."""
    from ..measure.baselines import RagRetriever

    return RagRetriever(run.ps.subset(run.n_calib), pole, k=k)


def released_wins(study: Study, run: SetRun, *, mask=None, lora=None, contexts=None, system=True) -> list[float]:
    """Per-item released wins of the matching pole (1, 0, or 0.5 on an exact tie)."""
    import contextlib

    from ..measure.evaluation import wins
    from ..measure.released import released_system_prompt, score_released
    from ..model.interventions import apply_mask

    sys_prompt = released_system_prompt(run.ps, run.poles[0]) if system else None
    items = run.ps.test
    if contexts is not None:
        from dataclasses import replace

        items = [replace(it, question=f"{c}\n\n{it.question}") for it, c in zip(items, contexts)]
    with apply_mask(study.model, mask), (lora.active() if lora is not None else contextlib.nullcontext()):
        s = score_released(study.model, items, system=sys_prompt, batch_size=study.cfg.batch_size)
    return [float(w) for w in wins(s.diff().numpy())]


@stage("condition-scores", settings=(*_MASK_SETTINGS, SETTINGS.baselines.rag_k), store="torch", version=2,
       result=ChoiceScores)
def condition_scores(study: Study, *, run: SetRun, condition: str) -> ChoiceScores:
    """Two-way-choice scores of one condition (``dense``, ``prompt:<pole>``, ``rag:<pole>``, ``random-mask``,
    ``<method>:<pole>``) on every held-out item; the dense pass keeps every block's answer features."""
    from ..measure.baselines import persona_prompt
    from ..measure.evaluation import score_choices
    from ..model.interventions import apply_mask

    model, ps, bs = study.model, run.ps, study.cfg.batch_size
    kind, _, pole = condition.partition(":")
    if kind == "dense":
        s = score_choices(model, ps.test, batch_size=bs, capture_layers=range(model.cfg.n_layers),
                          progress=f"{run.name} dense" if study.progress else False)
    elif kind == "prompt":
        s = score_choices(model, ps.test, system=persona_prompt(ps, pole), batch_size=bs)
    elif kind == "rag":
        s = score_choices(model, ps.test, contexts=rag_retriever(run, pole, study.cfg.baselines.rag_k).contexts(ps.test), batch_size=bs)
    else:
        mask = study.random_masks()[0] if kind == "random-mask" else run.masks[kind][pole]
        with apply_mask(model, mask):
            s = score_choices(model, ps.test, batch_size=bs)
    return s


@dataclass
class LoraOutcome:
    """One pole's LoRA adapters as the study keeps them: their scores on every held-out item, their run (cost and
    held-out damage) and, on an AI task's first pole, the released scoring's per-item wins (the paper table's row)."""

    scores: ChoiceScores
    run: LoraRun
    released_wins: list[float] | None = None

    def to_store(self) -> dict:
        """The stored form (``torch.save``): the scores' tensors, the run's cost, its damage, the released wins."""
        run = self.run.to_dict()
        out = {**self.scores.to_store(), "damage_kl": run.pop("damage_kl"), "damage_kl_ci95": run.pop("damage_kl_ci95"),
               "cost": run}
        if self.released_wins is not None:
            out["released_wins"] = self.released_wins
        return out

    @classmethod
    def from_store(cls, d: dict) -> "LoraOutcome":
        run = LoraRun.from_dict({**d["cost"], "damage_kl": d["damage_kl"], "damage_kl_ci95": d["damage_kl_ci95"]}, "lora")
        return cls(ChoiceScores.from_store(d), run, d.get("released_wins"))


@stage("lora", settings=(SETTINGS.baselines.sft_texts, SETTINGS.baselines.lora_max_epochs, SETTINGS.damage.damage_texts),
       store="torch", version=4, result=LoraOutcome)
def lora(study: Study, *, run: SetRun, pole: str) -> LoraOutcome:
    """LoRA adapters of one pole, trained until their held-out calibration loss stops falling: their scores
    on every held-out item, their training cost and their held-out damage."""
    from ..measure.baselines import train_lora
    from ..measure.evaluation import score_choices
    from ..model.interventions import Intervention
    from ..measure.matching import held_out_damage

    b, cfg, model = study.cfg.baselines, study.cfg, study.model
    cal = run.ps.calibration_pairs(pole)
    n_val = b.sft_texts // 2
    ad, cost = train_lora(model, cal[: b.sft_texts], epochs=b.lora_max_epochs, lr=3e-3, seed=cfg.seed, batch_size=8,
                          val_pairs=cal[b.sft_texts: b.sft_texts + n_val],
                          progress=f"{run.name}/{pole} LoRA" if study.progress else False)
    with ad.active():
        s = score_choices(model, run.ps.test, batch_size=cfg.batch_size)
    h = held_out_damage(model, [Intervention(lora=ad)], study.held_out_reference(), seed=cfg.seed)
    out = LoraOutcome(s, cost.update(trained=ad.trained, damage_kl=h.damage_kl, damage_kl_ci95=h.damage_kl_ci95))
    if run.sset.family == "ai" and pole == run.poles[0]:  # the paper table's LoRA row (released scoring)
        out.released_wins = released_wins(study, run, lora=ad)
    return out


def condition_interventions(run: SetRun, condition: str, study: Study) -> list:
    """The two poles' interventions of a condition, for its damage."""
    from ..measure.baselines import persona_prompt
    from ..model.interventions import Intervention

    if condition == "prompt":
        return [Intervention(system=persona_prompt(run.ps, p)) for p in run.poles]
    if condition == "rag":
        texts = " ".join(study.chat_reference().texts)  # one retrieval for all neutral texts
        return [Intervention(context=rag_retriever(run, p, study.cfg.baselines.rag_k).context(texts)) for p in run.poles]
    return [Intervention(mask=run.masks[condition][p]) for p in run.poles]


@stage("condition-damage", settings=(*_MASK_SETTINGS, SETTINGS.baselines.rag_k, SETTINGS.damage.damage_texts), version=3,
       result=HeldOutDamage)
def condition_damage(study: Study, *, run: SetRun, condition: str) -> HeldOutDamage:
    """Held-out damage of a condition's two interventions (prompt and RAG in the chat format)."""
    from ..measure.matching import held_out_damage

    ref = study.chat_reference() if condition in ("prompt", "rag") else study.held_out_reference()
    return held_out_damage(study.model, condition_interventions(run, condition, study), ref, seed=study.cfg.seed)


@dataclass
class ConditionResults:
    """One set's per-condition comparison, the :class:`~persona_circuits.results.SetResults` fields of the same names:
    ``conditions`` (each condition's choice rows), ``contrasts`` (with their damage), ``sft`` (a
    :class:`~persona_circuits.results.LoraRun` per pole, or ``None``) and ``answer_tokens`` (mean tokens per pole's answer)."""

    conditions: list[ChoiceRow]
    contrasts: list[Contrast]
    sft: dict[str, LoraRun] | None
    answer_tokens: dict[str, float]


def run_conditions(study: Study, run: SetRun) -> ConditionResults:
    """Every condition's scores (kept in ``run.scores``), accuracies, LoRA and contrasts of one set."""
    from ..measure.evaluation import pole_contrast, summarize

    cfg, poles = study.cfg, run.poles
    labels = ["dense", *(f"{k}:{p}" for p in poles for k in ("prompt", "rag")), "random-mask",
              *(f"{m}:{p}" for m in MAIN_METHODS for p in poles)]
    with study.timed(f"{run.name}: baselines and masks"):
        for label in labels:
            run.scores[label] = condition_scores(study, run=run, condition=label)
    sft: dict[str, LoraRun] = {}
    if run.name in cfg.baselines.sft_sets:
        with study.timed(f"{run.name}: LoRA fine-tuning"):
            for p in poles:
                ad = lora(study, run=run, pole=p)
                run.scores[f"sft:{p}"] = ad.scores
                sft[p] = ad.run
                if ad.released_wins is not None:
                    run.released_sft = ad.released_wins
    rows: list[ChoiceRow] = []
    for label, s in run.scores.items():
        cond, _, pole = label.partition(":")
        for p in ([pole] if pole else poles):
            rows.append(summarize(s, run.ps.pole_index(p), condition=cond, pole=p, seed=cfg.seed).update(condition_key=label))
    contrasts: list[Contrast] = []
    with study.timed(f"{run.name}: contrasts and damage"):
        for cond in ["prompt", "rag", *MAIN_METHODS, "sft"]:
            a, b = run.scores.get(f"{cond}:{poles[0]}"), run.scores.get(f"{cond}:{poles[1]}")
            if a is None or b is None:
                continue
            c = pole_contrast(a, b, condition=cond, seed=cfg.seed)
            if cond == "sft":
                c.update(damage_kl=float(np.mean([x.damage_kl for x in sft.values()])),
                         trained=all(x.trained for x in sft.values()))
            else:
                h = condition_damage(study, run=run, condition=cond)
                c.update(damage_kl=h.damage_kl, damage_kl_ci95=h.damage_kl_ci95)
            contrasts.append(c)
    dense = run.scores["dense"]
    return ConditionResults(conditions=rows, contrasts=contrasts, sft=sft or None,
                            answer_tokens={p: float(dense.n_tokens[:, i].float().mean()) for i, p in enumerate(poles)})
