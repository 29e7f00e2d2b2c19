"""Recompute one cached matched-damage null draw of a finished study and compare it with the cache.

Two uses: a reproducibility check (is the draw recomputed on this machine, with this code, byte for byte
the one the study stored?) and a profile of one draw (``--profile``: where its time goes: the strength
search on the fit texts, the held-out damage, the item scoring, the ranks of a contrastive dial).

The study's configuration is read from its ``results.json`` (``meta.study_config`` and ``meta.dtype``); its
stage cache is linked into a scratch folder (``--scratch``, replaced), the draw's entry removed there, and
the draw recomputed through the study's own stage (every earlier stage it needs is a cache hit). Needs the
study's output folder (``runs/full`` after ``make reproduce-full``) and, for AI tasks, the data root.

    python benchmarks/recompute_draw.py --study runs/full --set mbti-sn --method contrastive-wanda --target 0.02 --k 0

A draw is identified by its row (set, method, target: the row's ``null_seed``) and its index ``k`` in the row
(studies with balanced swaps and per-row seeds, issue 23; older caches keyed their draws differently).
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", type=Path, default=ROOT / "runs" / "full", help="the finished study's output folder")
    ap.add_argument("--set", default="mbti-sn", help="persona set of the draw")
    ap.add_argument("--method", default="contrastive-wanda", help="matched method (contrastive-wanda, soft-mask, steering)")
    ap.add_argument("--target", type=float, default=None, help="the row's target damage (default: the study's first)")
    ap.add_argument("--k", type=int, default=0, help="label-swapped draw of the row; the first draw (k = 0) has no start "
                    "strength, later ones start from the earlier draws' fits as in the study")
    ap.add_argument("--data-root", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/recompute_draw"), help="scratch folder (replaced)")
    ap.add_argument("--profile", action="store_true", help="print where the draw's time went")
    a = ap.parse_args(argv)
    res = a.study / "results.json"
    if not res.is_file() or not (a.study / "cache").is_dir():
        print(f"recompute_draw: {a.study} holds no finished study (results.json and cache/)", file=sys.stderr)
        return 2

    import persona_circuits as pc
    from persona_circuits.model.dtypes import cpu_model
    from persona_circuits.results import MatchedDraw
    from persona_circuits.study.config import StudyConfig
    from persona_circuits.study.headline import curve
    from persona_circuits.study.matched import real_prior, draw_start, draw_seeds, matched_null, matched_real, row_seed
    from persona_circuits.study.sets import study_sets
    from persona_circuits.study.setup import prepare_set
    from persona_circuits.study.state import Study

    meta = json.loads(res.read_text())["meta"]
    cfg = StudyConfig.from_dict(meta["study_config"])
    root = a.data_root.resolve() if a.data_root.is_dir() else None
    shutil.rmtree(a.scratch, ignore_errors=True)
    study = Study(pc.load_model(None, dtype=meta["dtype"]), a.scratch, cfg, root, False)
    study.cache.seed_from(a.study)
    sset = next((s for s in study_sets(cfg, root) if s.name == a.set), None)
    if sset is None:
        print(f"recompute_draw: the study has no set {a.set!r}", file=sys.stderr)
        return 2
    run = prepare_set(study, sset)
    cv = curve(study, run=run, method=a.method)
    prior = real_prior(cv, matched_real(study, run=run, method=a.method, curve=cv))
    target = float(cfg.headline.matched_damages[0] if a.target is None else a.target)
    seeds = draw_seeds(row_seed(run, a.method, target), a.k + 1)
    earlier: list = []
    for s in seeds[: a.k]:  # the earlier draws (cache hits) give draw k its start strength, as in the study
        earlier.append(matched_null(study, run=run, method=a.method, target=target, seed=s, kind="label-swapped",
                                    prior=prior, start=draw_start(earlier)))
    inputs = dict(run=run, method=a.method, target=target, seed=seeds[a.k], kind="label-swapped", prior=prior,
                  start=draw_start(earlier))
    entry = a.scratch / "cache" / f"matched-null-{matched_null.key_of(study, **inputs)}.json"
    if not entry.is_file():
        print(f"recompute_draw: the study's cache holds no draw {a.k} of {a.method} at KL {target:g} on {a.set}",
              file=sys.stderr)
        return 2
    entry.unlink()
    prof = cProfile.Profile() if a.profile else None
    t = time.perf_counter()
    if prof:
        prof.enable()
    new = matched_null(study, **inputs)
    if prof:
        prof.disable()
    sec = time.perf_counter() - t
    old = MatchedDraw.from_dict(json.loads((a.study / "cache" / entry.name).read_text()))
    same = (a.scratch / "cache" / entry.name).read_bytes() == (a.study / "cache" / entry.name).read_bytes()
    print(f"{a.set} {a.method} draw {a.k}: recomputed in {sec:.1f} s; byte-identical to the study's cache: {same}; "
          f"the same draw (every number): {new == old}")
    print(f"  target {target}: fit damage {old.fit_damage_kl!r} (cached) vs {new.fit_damage_kl!r} (now); "
          f"strength {old.strength!r} vs {new.strength!r}")
    print(f"  CPU here: {cpu_model()}; the study's: {meta.get('cpu', 'not recorded')}")
    if prof:
        pstats.Stats(prof).sort_stats("cumulative").print_stats(
            r"fit_strengths|held_out_damage|pair_item_shifts|ranked.py:\d+\(__init__\)|score_choices|kl_damage", 8)
    return 0


if __name__ == "__main__":
    sys.exit(main())
