"""KL damage on neutral text: the logits of several texts in one unembedding call (``KL_ROWS`` = 256 rows, the
default) against one call per text's group of 64 rows (the path before), on the same texts in the same run,
for SmolLM2-135M (49k vocabulary) and Gemma-3-270M (262k vocabulary), float32. Choice scoring likewise: its
answer tokens' logits ``LOGIT_ROWS`` = 256 rows per call against 64 (``target_logprobs``), on mbti-ei's
held-out items, the summed log-likelihoods compared bit for bit.

Same result: the per-text KL sums and negative log-likelihoods of both paths are compared bit for bit (the
dense model and a Wanda mask of mbti-ei). The saving is the matrix product's: a ``d_model x d_vocab`` product
streams the whole output embedding from memory at each call, so more rows per call cost less per row; the
reductions run on the same groups of rows either way.

    python benchmarks/bench_kl_rows.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import Result, get_model, interleaved, main_of, median, repeats_for  # noqa: E402


def scoring_rows(res: Result, models, model, repeats: int, n_items: int) -> str:
    """Choice scoring with 64 and with ``LOGIT_ROWS`` rows of logits per call: time ratio and bit-for-bit check."""
    import functools

    import torch

    import persona_circuits as pc
    from persona_circuits.measure import evaluation as ev
    from persona_circuits.measure import logits

    items = pc.load_persona_set("mbti-ei").test[:n_items]
    orig, rows = ev.target_logprobs, logits.LOGIT_ROWS
    lines = [f"| model | choice scoring, 64 rows per call (s) | {rows} rows per call (s) | ratio | log-likelihoods |",
             "| --- | --- | --- | --- | --- |"]
    for name in models:
        m = model if (model is not None and name is None) else get_model(name)

        def score(r, m=m):
            ev.target_logprobs = functools.partial(orig, rows=r)
            try:
                return pc.score_choices(m, items, batch_size=16)
            finally:
                ev.target_logprobs = orig

        same = torch.equal(score(logits.LOGIT_CHUNK).logp, score(rows).logp)
        label = name or "smollm2-135m-instruct"
        t = interleaved({f"{label}: scoring, 64 rows per call": lambda: score(logits.LOGIT_CHUNK),
                         f"{label}: scoring, {rows} rows per call": lambda: score(rows)}, repeats)
        res.timings.update(t)
        a, b = (median(v) for v in t.values())
        res.add(f"{label}: choice scoring, time with 64 / {rows} rows per call", a / b, "x")
        res.checks.append(f"{label}: summed log-likelihoods of {len(items)} items identical bit for bit with 64 and "
                          f"{rows} rows per call: {same}")
        lines.append(f"| {label} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {'identical' if same else 'DIFFER'} |")
    return "\n".join(lines)


def run(quick: bool = False, repeats: int | None = None, model=None, models: tuple[str | None, ...] = (None, "gemma-3-270m"),
        n_texts: int | None = None, n_items: int | None = None) -> Result:
    import numpy as np

    import persona_circuits as pc
    from persona_circuits.measure import damage

    repeats = repeats_for(quick, repeats, 3)
    n_texts = n_texts or (4 if quick else 16)
    res = Result("kl_rows", "Unembedding rows per call: KL damage (several texts per call) and choice scoring",
                 "python benchmarks/bench_kl_rows.py" + (" --quick" if quick else ""), runs=repeats)
    lines = ["| model | vocabulary | one call per text (s) | 256 rows per call (s) | ratio | per-text sums |",
             "| --- | --- | --- | --- | --- | --- |"]
    default_rows = damage.KL_ROWS
    for name in models:
        m = model if (model is not None and name is None) else get_model(name)
        ref = damage.neutral_reference(m, n_texts=n_texts)
        persona = pc.load_persona_set("mbti-ei")
        sigs = pc.record_persona_signatures(m, persona, calib_size=4 if quick else 16)
        mask = pc.build_masks(m, "wanda", sigs, sparsity=0.5)[persona.pole_names[0]]

        def kl(rows, iv=None, m=m, ref=ref):
            damage.KL_ROWS = rows
            try:
                return damage.kl_damage(m, iv, ref, n_boot=1)
            finally:
                damage.KL_ROWS = default_rows

        pairs = [(kl(damage.LOGIT_CHUNK, iv), kl(default_rows, iv)) for iv in (None, mask)]
        same = all(np.array_equal(a[3], b[3]) and a[2] == b[2] for a, b in pairs)
        label = name or "smollm2-135m-instruct"
        t = interleaved({f"{label}: one call per text": lambda: kl(damage.LOGIT_CHUNK),
                         f"{label}: {default_rows} rows per call": lambda: kl(default_rows)}, repeats)
        res.timings.update(t)
        a, b = (median(v) for v in t.values())
        vocab = m.cfg.d_vocab
        res.add(f"{label}: time of one call per text / {default_rows} rows per call", a / b, "x")
        res.checks.append(f"{label}: per-text KL sums and perplexity identical bit for bit on both paths "
                          f"(dense model and a Wanda mask): {same}")
        lines.append(f"| {label} | {vocab} | {a:.2f} | {b:.2f} | {a / b:.2f}x | {'identical' if same else 'DIFFER'} |")
    res.tables.append("\n".join(lines))
    res.tables.append(scoring_rows(res, models, model, repeats, n_items or (8 if quick else 48)))
    res.notes.append(f"{n_texts} neutral texts (the study's damage texts are 24, its fit texts 24); float32, the "
                     "benchmarks' reference dtype; medians of interleaved runs")
    return res


if __name__ == "__main__":
    main_of(run, __doc__.splitlines()[0])
