"""``persona-circuits evaluate``: two-way-choice alignment of the dense model and of each pole's mask, with
the pole contrast of a mask pair and its null test, under ``--scoring summed``, ``per-token`` or ``released``.

Imported by the ``evaluate`` handler only: unlike :mod:`.cli`, it imports torch (through the modules it uses).
"""

from __future__ import annotations

import json

from .common import check_positive, load_model_from_args, mask_gamma
from ..measure.damage import kl_damage, neutral_reference
from ..data import load_persona_set
from ..model.dtypes import dtype_name
from ..errors import PersonaCircuitsError
from ..measure.evaluation import pole_contrast, score_choices, summarize
from ..measure.released import released_contrast, released_system_prompt, score_released, summarize_released
from ..model.interventions import Intervention, apply_mask
from ..masks.build import load_masks, load_null_masks
from ..measure.nulls import null_test, zero_z


class _Conditions:
    """Choice scores of the held-out items under each condition (a mask or none) for a pole, with the
    ``--scoring`` of the command: ``released`` puts the pole's persona system prompt in front (also
    under a mask), the others score without a system prompt (so dense is scored once for both poles)."""

    def __init__(self, model, ps, items, args) -> None:
        self.model, self.ps, self.items, self.args = model, ps, items, args
        self.released = args.scoring == "released"
        self._cache: dict = {}

    def system(self, pole: str) -> str | None:
        if not self.released:
            return None
        return released_system_prompt(self.ps, pole)

    def scores(self, mask, pole: str, label: str = "scoring"):
        system = self.system(pole)
        key = (id(mask), system)
        if key not in self._cache:
            a = self.args
            kw = dict(batch_size=a.batch_size, progress=False if a.no_progress else label)
            with apply_mask(self.model, mask, gamma=mask_gamma(mask, a.gamma)):
                if self.released:
                    self._cache[key] = score_released(self.model, self.items, system=system, **kw)
                else:
                    self._cache[key] = score_choices(self.model, self.items, **kw)
        return self._cache[key]

    def summary(self, condition: str, mask, pole: str):
        """:class:`ChoiceResult` (summed / per-token) or :class:`ReleasedResult` of one pole."""
        s = self.scores(mask, pole, condition)
        kw = dict(condition=condition, pole=pole, seed=self.args.seed)
        if self.released:
            return summarize_released(s, self.ps.pole_index(pole), **kw)
        return summarize(s, self.ps.pole_index(pole), **kw)

    def contrast(self, mask_a, mask_b, condition: str):
        """Pole contrast: pole A's condition (its mask, and its prompt under ``released``) vs pole B's."""
        a, b = self.ps.pole_names
        sa, sb = self.scores(mask_a, a), self.scores(mask_b, b)
        if self.released:
            return released_contrast(sa, sb, condition=condition, seed=self.args.seed)
        return pole_contrast(sa, sb, condition=condition, seed=self.args.seed)


def _contrast_record(cond: _Conditions, masks, nulls, reference) -> dict | None:
    """The pole-contrast object of a mask pair (and its null test when null pairs are present)."""
    model, args = cond.model, cond.args
    a, b = cond.ps.pole_names
    if a not in masks or b not in masks:
        return None
    method = masks[a].config.method
    c = cond.contrast(masks[a], masks[b], method)
    dmg = {p: kl_damage(model, Intervention(mask=masks[p], gamma=mask_gamma(masks[p], args.gamma)), reference,
                        seed=args.seed)[0] for p in (a, b)}
    rec = {"condition": method, "pole": "contrast", "n": c.n, "shift": c.shift, "shift_ci95": list(c.shift_ci95),
           "moved": c.moved, "moved_ci95": list(c.moved_ci95), "damage_kl": float(sum(dmg.values()) / 2),
           "damage_kl_by_pole": dmg, "sparsity": masks[a].config.sparsity}
    if nulls:
        shifts, null_dmg = [], []
        for pair in nulls:
            shifts.append(cond.contrast(pair[a], pair[b], "null").shift)
            null_dmg.append(sum(kl_damage(model, Intervention(mask=pair[p], gamma=mask_gamma(pair[p], args.gamma)), reference,
                                          n_boot=1)[0] for p in (a, b)) / 2)
        t = null_test(c.shift, shifts, shift_ci95=c.shift_ci95)
        z, zp, _ = zero_z(c.shift, shifts)
        rec.update({k: v for k, v in t.to_dict().items() if k != "shift"}, null_shifts=shifts,
                   null_damage_kl_mean=float(sum(null_dmg) / len(null_dmg)), z=z, z_p_value=zp,
                   null_swap=nulls[0][a].config.extra.get("null_swap", "coins"))
    return rec


def cmd_evaluate(args) -> int:
    check_positive("--limit", args.limit)
    check_positive("--batch-size", args.batch_size)
    check_positive("--damage-texts", args.damage_texts)
    ps = load_persona_set(args.dataset)
    items = ps.test[: args.limit] if args.limit else ps.test
    if not items:
        raise PersonaCircuitsError(f"{ps.name}: no held-out items to evaluate")
    masks = load_masks(args.mask) if args.mask else {}
    nulls = load_null_masks(args.mask) if args.mask else []
    model = load_model_from_args(args)
    for m in list(masks.values()) + [m for pair in nulls for m in pair.values()]:
        m.check_model(model)
    cond = _Conditions(model, ps, items, args)
    # dense: both poles; a pole's mask: that pole (a mask named after no pole: both poles)
    conditions = [("dense", None, ps.pole_names)] + [
        (f"{m.config.method}:{key}", m, [key] if key in ps.pole_names else ps.pole_names) for key, m in masks.items()]
    results = [cond.summary(name, mask, pole) for name, mask, poles in conditions for pole in poles]
    contrast = None
    if len(ps.poles) == 2 and masks:
        reference = neutral_reference(model, n_texts=args.damage_texts, batch_size=min(args.batch_size, 8))
        contrast = _contrast_record(cond, masks, nulls, reference)
    tags = {"scoring": args.scoring, "dtype": dtype_name(model)}
    if args.json:
        for r in results:
            print(json.dumps({**_json_row(r, args.scoring), **tags}))
        if contrast is not None:
            print(json.dumps({**contrast, **tags}))
    else:
        _print_table(ps, items, results, args.scoring, cond)
        if contrast is not None:
            _print_contrast(ps, contrast, args.scoring)
    return 0


def _json_row(r, scoring: str) -> dict:
    """One condition-and-pole JSON object: ``accuracy`` is the ``--scoring``'s choice accuracy."""
    d = r.to_dict()
    if scoring == "released":
        return {k: d[k] for k in ("condition", "pole", "n", "accuracy", "accuracy_ci95", "mean_margin", "system")}
    out = {k: d[k] for k in ("condition", "pole", "n", "accuracy", "accuracy_ci95", "accuracy_length_normalized",
                             "mean_margin")}
    if scoring == "per-token":
        out["accuracy"], out["accuracy_ci95"] = d["accuracy_length_normalized"], d["accuracy_length_normalized_ci95"]
    return out


def _print_table(ps, items, results, scoring: str, cond: _Conditions) -> None:
    if scoring == "released":
        print(f"{ps.name}: {len(items)} held-out items; released scoring: the answer whose whole text (persona system "
              "prompt, question, answer) has the lower mean next-token loss wins")
        print(f"{'condition':34s} {'pole':14s} {'n':>4s} {'acc':>10s} {'95% CI':>15s} {'margin nats/tok':>16s}")
        for r in results:
            ci = f"[{r.accuracy_ci95[0]:.2f}, {r.accuracy_ci95[1]:.2f}]"
            print(f"{r.condition:34s} {r.pole:14s} {r.n:4d} {r.accuracy:10.3f} {ci:>15s} {r.mean_margin:16.3f}")
        for pole in ps.pole_names:
            print(f"system prompt of {pole}: {cond.system(pole)!r}")
        return
    per = " per answer token (the acc (len-norm) column)" if scoring == "per-token" else ""
    print(f"{ps.name}: {len(items)} held-out items; accuracy = share of items where the pole's answer has the higher "
          f"log-likelihood{per}")
    print(f"{'condition':34s} {'pole':14s} {'n':>4s} {'acc (sum)':>10s} {'95% CI':>15s} {'acc (len-norm)':>15s} {'margin nats/tok':>16s}")
    for r in results:
        ci = f"[{r.accuracy_ci95[0]:.2f}, {r.accuracy_ci95[1]:.2f}]"
        print(f"{r.condition:34s} {r.pole:14s} {r.n:4d} {r.accuracy:10.3f} {ci:>15s} {r.accuracy_length_normalized:15.3f} {r.mean_margin:16.3f}")


def _print_contrast(ps, c: dict, scoring: str) -> None:
    pref = "whole-text loss preference" if scoring == "released" else "per-token preference"
    print(f"\npole contrast ({c['condition']}, {ps.pole_names[0]} mask vs {ps.pole_names[1]} mask, {pref} "
          f"for {ps.pole_names[0]}'s answer): {c['shift']:+.3f} nats/token "
          f"[{c['shift_ci95'][0]:+.3f}, {c['shift_ci95'][1]:+.3f}], {100 * c['moved']:.0f} % of items moved; "
          f"damage {c['damage_kl']:.3f} nats/token KL on neutral text")
    if "null_draws" in c:
        sd = "n/a" if c["null_shift_sd"] is None else f"{c['null_shift_sd']:.3f}"
        thr = "n/a (needs >= 2 draws)" if c["null_threshold"] is None else f"{c['null_threshold']:+.3f}"
        print(f"null ({c['null_draws']} label-swapped pairs): mean {c['null_shift_mean']:+.3f}, sd {sd}, "
              f"95 % prediction bound {thr}, null damage {c['null_damage_kl_mean']:.3f}; "
              f"persona-specific: {'yes' if c['persona_specific'] else 'no'}")
    else:
        print("no null pairs in the mask folder (build them with `mask ... --null-draws K`): "
              "the contrast cannot be called persona-specific")
