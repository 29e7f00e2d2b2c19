"""Cost per query at inference: the masked model vs a persona prompt (system prompt describing the
pole, ``persona_set.poles[i].description``) vs RAG (the k=4 nearest calibration examples by TF-IDF
cosine, put in the user turn as examples) for the same questions. A query = scoring both answers of a
two-way-choice item (one forward pass over the two sequences).

Same work: every condition scores the same answer tokens after the same question; the masked model's
sequences are token for token the plain ones (the mask adds no tokens).

    python benchmarks/bench_inference.py [--quick]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


from _common import Result, get_model, interleaved, main_of, median, repeats_for  # noqa: E402

K = 4


class TfidfRetriever:
    def __init__(self, persona, pole: int) -> None:
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.pairs = persona.calibration_pairs(pole)
        self.vec = TfidfVectorizer().fit([q for q, _ in self.pairs])
        self.mat = self.vec.transform([q for q, _ in self.pairs])

    def context(self, question: str, k: int = K) -> str:
        sims = (self.mat @ self.vec.transform([question]).T).toarray().ravel()
        top = sims.argsort()[::-1][:k]
        return "Examples:\n" + "\n".join(f"Q: {self.pairs[i][0]}\nA: {self.pairs[i][1]}" for i in top)


def run(quick: bool = False, repeats: int | None = None, model=None, n_items: int | None = None) -> Result:
    import persona_circuits as pc
    from persona_circuits.data import encode_pair
    from persona_circuits.model.loading import get_tokenizer

    model = model or get_model()
    repeats = repeats_for(quick, repeats, 3)
    persona = pc.load_persona_set("mbti-ei")
    items = persona.test[: n_items or (2 if quick else 8)]
    pole = 0
    system = persona.poles[pole].description
    retr = TfidfRetriever(persona, pole)
    mask = pc.random_mask(model, sparsity=0.5, seed=0)  # cost does not depend on which mask
    tok = get_tokenizer(model)
    res = Result("inference", "Cost per query: masked model vs persona prompt vs RAG",
                 "python benchmarks/bench_inference.py" + (" --quick" if quick else ""), runs=repeats)

    ctx = [retr.context(it.question) for it in items]
    def enc(it, ans, **kw):
        return encode_pair(tok, it.question, ans, **kw)
    conds = {"mask": {}, "prompt": {"system": system}, "rag": None}
    toks = {}
    for name in conds:
        n = 0
        for i, it in enumerate(items):
            for ans in (it.answer_a, it.answer_b):
                e = enc(it, ans, context=ctx[i]) if name == "rag" else enc(it, ans, **conds[name])
                plain = enc(it, ans)
                assert e.ids[e.answer_start:] == plain.ids[plain.answer_start:], "answer tokens differ"
                if name == "mask":
                    assert e.ids == plain.ids
                n += len(e.ids)
        toks[name] = n / len(items)
    res.checks.append("all conditions score the same answer tokens; the masked model's sequences equal the "
                      "plain ones token for token")

    def per_item(fn):
        def go():
            for i, it in enumerate(items):
                fn(i, it)
        return go

    def q_mask(i, it):
        pc.score_choices(model, [it], batch_size=2)

    def q_prompt(i, it):
        pc.score_choices(model, [it], system=system, batch_size=2)

    def q_rag(i, it):
        c = retr.context(it.question)
        pc.score_choices(model, [it], contexts=[c], batch_size=2)

    def retrieval():
        for it in items:
            retr.context(it.question)

    with pc.apply_mask(model, mask):
        t_mask = interleaved({"mask": per_item(q_mask)}, repeats)["mask"]
    t = interleaved({"prompt": per_item(q_prompt), "rag": per_item(q_rag), "retrieval": retrieval}, repeats)
    sw = []
    for _ in range(3):
        t0 = time.perf_counter()
        with pc.apply_mask(model, mask):
            pass
        sw.append(time.perf_counter() - t0)
    n = len(items)
    res.timings = {"masked model, all queries": t_mask, "persona prompt, all queries": t["prompt"],
                   f"RAG (k={K}, TF-IDF), all queries": t["rag"], "RAG retrieval only": t["retrieval"],
                   "one persona switch (enter + exit)": sw}
    lat = {"mask": median(t_mask) / n, "prompt": median(t["prompt"]) / n, "rag": median(t["rag"]) / n}
    for name, label in (("mask", "masked model"), ("prompt", "persona prompt"), ("rag", "RAG")):
        res.add(f"{label}: tokens processed per query", toks[name], "tokens")
        res.add(f"{label}: latency per query", lat[name] * 1e3, "ms")
    res.add("persona prompt / masked: tokens per query", toks["prompt"] / toks["mask"], "x", 1.0, ">=")
    res.add("RAG / masked: tokens per query", toks["rag"] / toks["mask"], "x", 1.0, ">=")
    res.add("persona prompt / masked: latency per query", lat["prompt"] / lat["mask"], "x")
    res.add("RAG / masked: latency per query", lat["rag"] / lat["mask"], "x")
    res.notes.append(f"{n} mbti-ei test items, pole '{persona.poles[pole].name}'; the mask is applied once "
                     f"for all queries (switch cost {median(sw) * 1e3:.0f} ms, paid once per persona change); "
                     f"target: the mask adds no tokens, so the other conditions cost at least as many")
    return res


if __name__ == "__main__":
    main_of(run, __doc__)
