"""Alignment per persona set: every condition's accuracy for both poles, the pole contrasts with their damage,
the steering layer and the LoRA runs."""

from __future__ import annotations

from ...results import MAIN_METHODS, Contrast, SetResults, StudyResults
from ..labels import LENGTH_DECIDED, lora_trained
from .text import ci, iv, pct, table


def alignment_section(res: StudyResults) -> list[str]:
    """One block per set, then the cross-set pole-contrast figure."""
    L = ["## Alignment per persona set\n", "![main accuracy](figures/main_accuracy.png)\n"]
    for name, s in res.sets.items():
        L += set_block(name, s)
    L.append("## Pole contrast across sets\n\n![pole contrast](figures/pole_contrast.png)\n")
    return L


def set_block(name: str, s: SetResults) -> list[str]:
    """A set's accuracy table, its pole contrasts, its steering layer and its LoRA runs."""
    poles = s.poles
    L = [f"### {name} ({' / '.join(poles)}; {s.n_calibration} calibration texts per pole, {s.n_test} held-out items)\n"]
    summed = name not in LENGTH_DECIDED
    header = ["condition"] + [h for p in poles for h in ([f"{p}: acc sum"] if summed else [])
                              + [f"{p}: acc per token", f"{p}: margin"]]
    rows = []
    for c in s.condition_names():
        cells = [c]
        for p in poles:
            r = s.row(c, p)
            cell = ([f"{pct(r.accuracy)} {ci(r.accuracy_ci95)}",
                     f"{pct(r.accuracy_length_normalized)} {ci(r.accuracy_length_normalized_ci95)}",
                     f"{r.mean_margin:+.3f}"] if r else ["-", "-", "-"])
            cells += cell if summed else cell[1:]
        rows.append(cells)
    L += table(header, rows)
    L.append("")
    L.append("Pole contrast (same items, pole-A condition vs pole-B condition; shift of the per-token preference for "
             f"`{poles[0]}`'s answer, nats/token, and share of items that moved towards it):\n")
    L += table(["method", "shift", "95 % CI", "items moved", "95 % CI", "damage (KL, nats/token)"],
               [[c.condition, f"{c.shift:+.3f}", iv(c.shift_ci95), pct(c.moved), ci(c.moved_ci95) if c.moved_ci95 else "-",
                 _damage(c)] for c in s.contrasts])
    L.append("\n" + nulls_where(s))
    if s.steering:
        steered = s.headline is not None and any(r.method == "steering" for r in s.headline.matched)
        L.append(f"\nSteering layer {s.steering.layer} (chosen on calibration items); "
                 + ("its coefficients come from the damage targets." if steered else
                    "steering was not measured at matched damage on this set in this run."))
    L += lora_lines(s)
    L.append("")
    return L


def _damage(c: Contrast) -> str:
    if c.damage_kl is None:
        return "-"
    return f"{c.damage_kl:.3f}" + (f" {iv(c.damage_kl_ci95, '{:.3f}')}" if c.damage_kl_ci95 else "")


def nulls_where(s: SetResults) -> str:
    """Where the set's masks meet their nulls: the headline's curves and matched rows, when this run drew them."""
    masks = [c.condition for c in s.contrasts if c.condition in MAIN_METHODS]
    curves = set(s.headline.curves) if s.headline else set()
    if s.headline is not None and all(m in curves for m in masks):
        return ("Masks here are at the study's sparsity; their nulls, and every method at matched damage, are in the "
                "headline section.")
    if s.headline is None:
        return ("Masks here are at the study's sparsity; this run measured no effect against damage on this set, so "
                "none of these contrasts has a null here.")
    have = [m for m in masks if m in curves]
    missing = [m for m in masks if m not in curves]
    held = ", ".join(dict.fromkeys(r.method for r in s.headline.matched)) or "no method"
    return ("Masks here are at the study's sparsity. In the headline section, "
            + (f"{', '.join(have)}: label-swapped nulls on the effect-against-damage curves; " if have else "")
            + (f"{', '.join(missing)}: no null in this run; " if missing else "")
            + f"the matched-damage table holds {held}.")


def lora_lines(s: SetResults) -> list[str]:
    """The LoRA runs' cost and held-out losses; whether the adapters moved the model (computed)."""
    if not s.sft:
        return []

    def one(p, c):
        """One pole's run: steps, epochs, tokens, time, parameters, held-out losses."""
        conv = " (stopped falling)" if c.converged else " (still falling at the maximum)" if c.converged is False else ""
        return (f"{p}: {c.steps} steps over {c.epochs} epoch(s) (at most {c.max_epochs if c.max_epochs is not None else c.epochs}), "
                f"{c.tokens} tokens, {c.seconds:.0f} s, {c.trainable_parameters} trainable parameters, held-out "
                f"calibration loss {' → '.join(f'{v:.3f}' for v in c.val_losses or [])}{conv}")
    L = ["\nLoRA fine-tuning, trained until its held-out calibration loss stops falling: "
         + "; ".join(one(p, c) for p, c in s.sft.items()) + "."]
    if lora_trained(s) is False:
        dmg = ", ".join(f"{p} {c.damage_kl:g}" for p, c in s.sft.items() if c.damage_kl is not None)
        L.append(f"Its adapters left the model unchanged (KL to the dense model on neutral text: {dmg}), so its rows "
                 "are the dense model's and are not an upper bound.")
    return L
