"""bfloat16 without native bfloat16: the matrix products in float32 (``model.upcast``) against torch's own bfloat16
kernels, on the KL damage of a Wanda mask on neutral text (the study's most costly measurement), for SmolLM2-135M
and Gemma-3-270M; the float32 model for scale.

On a CPU without AVX512-BF16 or AMX-BF16, torch computes bfloat16 products with a generic kernel (each element
converted, float32 sums) at a fraction of float32's speed; ``model.upcast`` converts the operands once and runs the
float32 kernel, rounding the result to bfloat16: the same arithmetic up to the order of the float32 sums. Same
result: the KL of both ways is compared (relative difference), next to the bfloat16-against-float32 difference,
the scale of a dtype's rounding. On a CPU with native bfloat16 the comparison still runs (there the native
kernels are the fast way, and the study does not convert).

    python benchmarks/bench_bf16_upcast.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import MODELS, Result, get_model, interleaved, main_of, median, repeats_for  # noqa: E402


def _bf16_model(name: str | None):
    key = f"{name or 'default'}-bf16"
    if key not in MODELS:
        import persona_circuits as pc

        MODELS[key] = pc.load_model(name, dtype="bfloat16")
    return MODELS[key]


def run(quick: bool = False, repeats: int | None = None, model=None, models: tuple[str | None, ...] = (None, "gemma-3-270m"),
        n_texts: int | None = None) -> Result:
    import numpy as np

    import persona_circuits as pc
    from persona_circuits.measure import damage
    from persona_circuits.model.dtypes import cpu_bf16_features
    from persona_circuits.model.upcast import Bf16ViaFloat32

    repeats = repeats_for(quick, repeats, 3)
    n_texts = n_texts or (2 if quick else 8)
    native = sorted(cpu_bf16_features())
    res = Result("bf16_upcast", "bfloat16 products in float32 vs torch's bfloat16 kernels (KL damage of a mask)",
                 "python benchmarks/bench_bf16_upcast.py" + (" --quick" if quick else ""), runs=repeats)
    lines = ["| model | torch's bfloat16 kernels (s) | bfloat16, products in float32 (s) | float32 model (s) | "
             "kernels / float32 products | KL: float32 products vs kernels | KL: bfloat16 vs float32 |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for name in models:
        label = name or "smollm2-135m-instruct"
        mf = model if (model is not None and name is None) else get_model(name)
        mb = _bf16_model(name)
        persona = pc.load_persona_set("mbti-ei")
        sigs = pc.record_persona_signatures(mf, persona, calib_size=4 if quick else 16)
        mask = pc.build_masks(mf, "wanda", sigs, sparsity=0.5)[persona.pole_names[0]]
        ref_b = damage.neutral_reference(mb, n_texts=n_texts)
        ref_f = damage.neutral_reference(mf, n_texts=n_texts)

        def kernels(mb=mb, ref=ref_b, mask=mask):
            return damage.kl_damage(mb, mask, ref, n_boot=1)

        def products(mb=mb, ref=ref_b, mask=mask):
            with Bf16ViaFloat32():
                return damage.kl_damage(mb, mask, ref, n_boot=1)

        def float32(mf=mf, ref=ref_f, mask=mask):
            return damage.kl_damage(mf, mask, ref, n_boot=1)

        a, b, c = kernels(), products(), float32()
        again = products()
        same_run = np.array_equal(b[3], again[3])
        t = interleaved({f"{label}: bfloat16 kernels": kernels, f"{label}: bfloat16, products in float32": products,
                         f"{label}: float32": float32}, repeats)
        res.timings.update(t)
        ta, tb, tc = (median(v) for v in t.values())
        d_kern = abs(b[0] - a[0]) / a[0]
        d_dtype = abs(a[0] - c[0]) / c[0]
        res.add(f"{label}: time, torch's bfloat16 kernels / products in float32", ta / tb, "x")
        res.add(f"{label}: time, products in float32 / float32 model", tb / tc, "x")
        res.add(f"{label}: KL relative difference, products in float32 vs bfloat16 kernels", d_kern)
        res.add(f"{label}: KL relative difference, bfloat16 kernels vs float32 model", d_dtype)
        res.checks.append(f"{label}: KL of the mask {a[0]:.6f} (bfloat16 kernels), {b[0]:.6f} (products in float32), "
                          f"{c[0]:.6f} (float32); products in float32 twice: identical per-text sums: {same_run}")
        lines.append(f"| {label} | {ta:.2f} | {tb:.2f} | {tc:.2f} | {ta / tb:.2f}x | {d_kern:.2%} | {d_dtype:.2%} |")
    res.tables.append("\n".join(lines))
    res.notes.append(f"{n_texts} neutral texts, a Wanda mask (sparsity 0.5) of mbti-ei's first pole; this CPU's native "
                     f"bfloat16: {', '.join(native) or 'none'} (without it, 'torch's kernels' are its generic "
                     "bfloat16 kernel); medians of interleaved runs. Differences of the KL between two bfloat16 "
                     "computations are rounding differences carried through every layer: one float32 sum rounded "
                     "the other way changes a bfloat16 output by one unit in its last place")
    return res


if __name__ == "__main__":
    main_of(run, __doc__.splitlines()[0])
