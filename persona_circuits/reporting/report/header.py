"""The report's title, how to regenerate it, and the run's settings."""

from __future__ import annotations

from ...results import DEFAULT_TEXT_STAT, StudyResults


def header_section(res: StudyResults) -> list[str]:
    """Title, the command and machine of the run, and the settings every table depends on."""
    m = res.meta
    cfg = m.config
    run = "quick" if m.quick else "full"
    L = ["# persona_circuits: study report\n"]
    if m.missing_shards:
        L.append(f"**Partial study** (`merge --partial`): this report lacks the shards {', '.join(m.missing_shards)} "
                 "of its study; every pooled test (the primary family, the calibration, Holm's families) pools only "
                 "the sets present, and the cross-set results need the cross shard.\n")
    L.append(f"Regenerate with `{m.command or 'persona-circuits reproduce'}` ({run} run, model `{m.model}`, "
             f"{m.cpu_count} CPU cores{f' ({m.cpu})' if m.cpu else ''}, torch {m.torch}, weights and forward passes in {m.dtype or 'float32'} "
             f"(statistics accumulated in float64), {m.seconds} s, finished {m.finished}). Every number below is read "
             "from `results.json` of that run; the figures are drawn from it by `persona-circuits figures`.\n")
    if cfg.text_stat is not None:
        zstat = f"contrastive z-score from the per-text `{cfg.text_stat}` statistic"
    else:
        zstat = (f"contrastive z-score from the per-text `{DEFAULT_TEXT_STAT}` statistic (the package default; this "
                 "run's settings do not record it)")
    L.append(f"Settings: statistics over `{cfg.tokens}` tokens, `{cfg.statistic}` channel statistic (Wanda scores), "
             f"{zstat}, modules `{cfg.modules}`, sparsity {cfg.sparsity}, {cfg.calib_size} calibration texts per pole, "
             f"RAG k = {cfg.rag_k}, seed {cfg.seed}. Accuracy = share of held-out items whose pole answer has the "
             "higher log-likelihood (summed, and per token = length-normalised); intervals are bootstrap 95 % over items.\n")
    return L
