"""General capability: perplexity on neutral text and accuracy on a general-knowledge choice set,
both written for this project (``persona_circuits/capability/``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from ..data import ChoiceItem, EncodedText, pad_batches
from ..measure.evaluation import bootstrap_ci, score_choices
from ..model.loading import Model, get_tokenizer
from ..results import Accuracy, GeneralChoice, Perplexity

CAPABILITY_DIR = Path(__file__).resolve().parents[1] / "capability"


def neutral_texts(limit: int | None = None) -> list[str]:
    rows = [json.loads(l) for l in (CAPABILITY_DIR / "neutral_text.jsonl").read_text().splitlines() if l.strip()]
    return [r["text"] for r in rows][:limit]


def general_choice_items(limit: int | None = None) -> list[ChoiceItem]:
    rows = [json.loads(l) for l in (CAPABILITY_DIR / "general_choice.jsonl").read_text().splitlines() if l.strip()]
    return [ChoiceItem(r["id"], r["question"], r["correct"], r["incorrect"]) for r in rows][:limit]


@torch.no_grad()
def perplexity(model: Model, texts: list[str], *, batch_size: int = 16) -> Perplexity:
    """Token-level perplexity ``exp(mean NLL)`` of plain texts (no chat template), with a bootstrap
    interval over texts of the mean NLL."""
    tok = get_tokenizer(model)
    enc = [EncodedText(tok(t).input_ids, 1) for t in texts]
    device = next(model.parameters()).device
    nll = np.zeros(len(enc))
    cnt = np.zeros(len(enc))
    for b in pad_batches(enc, tok.pad_token_id, batch_size):
        ids = b.input_ids.to(device)
        logits = model(ids, attention_mask=b.attention_mask.to(device)).float()
        lp = logits[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1) - logits[:, :-1].logsumexp(-1)
        m = b.attention_mask[:, 1:].to(device).float()
        nll[b.index] = (-(lp * m).sum(1)).cpu().numpy()
        cnt[b.index] = m.sum(1).cpu().numpy()
    per_text = nll / cnt
    mean = float(nll.sum() / cnt.sum())
    lo, hi = bootstrap_ci(per_text)
    return Perplexity(perplexity=math.exp(mean), mean_nll=mean, mean_nll_ci95=(lo, hi), n_texts=len(texts),
                      n_tokens=int(cnt.sum()))


def choice_accuracy(model: Model, items: list[ChoiceItem], *, batch_size: int = 16, seed: int = 0) -> GeneralChoice:
    """Two-way choice accuracy (the correct answer more likely: summed and per token; a tie counts 0.5), each with
    its bootstrap interval over items."""
    s = score_choices(model, items, batch_size=batch_size)

    def acc(d) -> Accuracy:
        w = np.where(d.numpy() > 0, 1.0, np.where(d.numpy() < 0, 0.0, 0.5))
        return Accuracy(accuracy=float(w.mean()), accuracy_ci95=bootstrap_ci(w, seed=seed))

    return GeneralChoice(n=len(items), summed=acc(s.diff(False)), length_normalized=acc(s.diff(True)))
