"""Signature recording (``persona_circuits.masks.statistics.record_encoded``) vs a plain forward pass over
the same padded batches with no hooks.

The recorder stops after the last block (it raises after ``blocks.{last}.hook_out`` and so skips the
final norm and the unembedding), so the overhead is reported twice: against a plain full forward
(logits included, which flatters the recorder) and against a plain forward that also stops after the
last block (the fair comparison; the target applies to it). Same result: the recording pass computes
the same hidden states as the plain pass (the residual stream after the last block is compared).

    python benchmarks/bench_recording.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch  # noqa: E402

from _common import (Result, calibration_texts, data_sources, get_model, interleaved, main_of, median,  # noqa: E402
                     repeats_for)

BATCH = 8


def run(quick: bool = False, repeats: int | None = None, model=None, n_texts: int | None = None) -> Result:
    from persona_circuits.data import pad_batches
    from persona_circuits.model.loading import get_tokenizer, prunable_layers
    from persona_circuits.model.hooks import StopForward, block_out, stop
    from persona_circuits.masks.statistics import record_encoded

    model = model or get_model()
    repeats = repeats_for(quick, repeats)
    n_texts = n_texts or (4 if quick else 16)
    enc = calibration_texts(model, n_texts)
    tok = get_tokenizer(model)
    batches = pad_batches(enc, tok.pad_token_id, BATCH)
    last = max(l.block for l in prunable_layers(model))
    stop_hook = block_out(last)
    res = Result("recording", "Signature recording vs a plain forward pass (same padded batches)",
                 "python benchmarks/bench_recording.py" + (" --quick" if quick else ""), runs=repeats)

    @torch.no_grad()
    def plain_full():
        for b in batches:
            model(b.input_ids, attention_mask=b.attention_mask)

    @torch.no_grad()
    def plain_trunc(capture=None):
        hooks = [(stop_hook, stop)] if capture is None else [(stop_hook, capture), (stop_hook, stop)]
        with model.hooks(fwd_hooks=hooks):
            for b in batches:
                try:
                    model(b.input_ids, attention_mask=b.attention_mask)
                except StopForward:
                    pass

    def record():
        return record_encoded(model, enc, batch_size=BATCH)

    # same result: the hidden states after the last block are identical with and without the recorder
    got_plain, got_rec = [], []
    plain_trunc(lambda x, hook: got_plain.append(x.detach().clone()))
    with model.hooks(fwd_hooks=[(stop_hook, lambda x, hook: got_rec.append(x.detach().clone()))]):
        sums, n_tok, n_txt = record()
    assert len(got_plain) == len(got_rec) == len(batches)
    assert all(torch.equal(a, b) for a, b in zip(got_plain, got_rec)), "recording changed the forward pass"
    assert n_txt == len(enc) and all(torch.isfinite(v).all() for d in sums.values() for v in d.values())
    res.checks.append(f"residual stream after block {last} bit-identical with and without the recorder "
                      f"({len(batches)} batches); {len(sums)} layers recorded over {n_tok} answer tokens")

    t = interleaved({"plain_full": plain_full, "plain_trunc": plain_trunc, "record": record}, repeats)
    res.timings = {"plain forward, full (logits)": t["plain_full"],
                   f"plain forward, stopped after block {last}": t["plain_trunc"],
                   "record_encoded (all 210 layers)": t["record"]}
    r, pt, pf = median(t["record"]), median(t["plain_trunc"]), median(t["plain_full"])
    res.add("overhead vs plain forward stopped after the last block (fair)", 100 * (r / pt - 1), "%", 15, "<=")
    res.add("overhead vs plain full forward (recorder skips the unembedding)", 100 * (r / pf - 1), "%", 15, "<=")
    res.add("unembedding + final norm share of the full forward", 100 * (1 - pt / pf), "%")
    n_tok_all = int(sum(b.attention_mask.sum() for b in batches))
    res.add("recording throughput", n_tok_all / r, "tokens/s")
    res.notes.append(f"{len(enc)} texts ({data_sources()}), batch {BATCH}, {n_tok_all} tokens incl. prompts, "
                     f"statistics over answer tokens")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
