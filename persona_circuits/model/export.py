"""Export a persona model: the base model with a mask applied, as a standard Hugging Face checkpoint.

``export_model(model, mask, out)`` writes ``config.json``, ``generation_config.json``,
``model.safetensors`` (the masked weights), the tokenizer files, ``persona_mask.json`` (the mask's
metadata, with ``dtype``: the weights' dtype, and ``mask_dtype``: the model's dtype when the mask was
built) and a ``README.md`` model card. ``transformers.AutoModelForCausalLM.from_pretrained(out)``
loads it without this package, so any tool that reads Hugging Face checkpoints can serve the persona.

The loaded model is a TransformerLens ``TransformerBridge`` that wraps the Hugging Face modules in
place; its state dict carries the wrappers' names (``..._original_component...``) and a zero bias the
bridge adds to the unembedding. The export writes the weights under the names a fresh model of the
same config expects, shares their storage (no copy of the model), and restores the dense weights on
exit like :func:`~persona_circuits.model.interventions.apply_mask`.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import torch

from .. import __version__
from .dtypes import dtype_name
from .interventions import apply_mask
from .loading import Model, get_model_id, get_tokenizer, hf_model, prunable_layers
from .._io import atomic_directory
from ..errors import OutputError
from ..masks.build import Mask

_WRAPPER = "._original_component"
#: config fields that describe how the base model was stored, not the exported weights
_DROP_CONFIG = ("quantization_config",)
MASK_FILENAME = "persona_mask.json"


def _clean_state_dict(hf) -> dict[str, torch.Tensor]:
    return {k.replace(_WRAPPER, ""): v for k, v in hf.state_dict().items()}


def _export_config(hf):
    config = copy.deepcopy(hf.config)
    for name in _DROP_CONFIG:
        if hasattr(config, name):
            delattr(config, name)
    if not getattr(config, "architectures", None):
        config.architectures = [type(hf).__name__]
    return config


def _plain_model(hf, state: dict[str, torch.Tensor]):
    """A model of ``hf``'s class and config whose parameters are the tensors of ``state`` (no copy)."""
    config = _export_config(hf)
    with torch.device("meta"):
        plain = type(hf)(config)
    expected = plain.state_dict()
    kept = {state[k].data_ptr() for k in expected if k in state}
    for k in sorted(set(state) - set(expected)):
        # the bridge's aliases of kept tensors (blocks.0.attn.q...) and its synthetic zero unembedding
        # bias; anything else would change the model
        if state[k].data_ptr() not in kept and state[k].count_nonzero():
            raise OutputError(f"cannot export: the loaded model has a non-zero tensor {k} that {type(hf).__name__} lacks")
    missing = sorted(set(expected) - set(state))
    tied = set(getattr(plain, "all_tied_weights_keys", None) or getattr(plain, "_tied_weights_keys", None) or {})
    if set(missing) - tied:
        raise OutputError(f"cannot export: no weights for {sorted(set(missing) - tied)[:3]}")
    plain.load_state_dict({k: state[k] for k in expected if k in state}, strict=False, assign=True)
    plain.tie_weights()
    if getattr(hf, "generation_config", None) is not None:
        plain.generation_config = copy.deepcopy(hf.generation_config)
    return plain


def exported_layer_names(model: Model) -> dict[str, str]:
    """Prunable layer name (``blocks.3.mlp.out``) -> name of its weight in the exported checkpoint."""

    hf = hf_model(model)
    with torch.device("meta"):
        expected = set(type(hf)(_export_config(hf)).state_dict())
    names: dict[int, str] = {}
    for n, m in hf.named_modules(remove_duplicate=False):  # the bridge also registers aliases (blocks.0.attn.q)
        n = n.replace(_WRAPPER, "")
        if f"{n}.weight" in expected:
            names.setdefault(id(m), f"{n}.weight")
    return {l.name: names[id(l.module)] for l in prunable_layers(model)}


def model_card(model: Model, mask: Mask, *, gamma: float = 0.0, out_name: str = "MODEL_DIR") -> str:
    """The README.md of an exported persona model."""

    c = mask.config
    pole = c.pole or "?"
    rows = [
        ("base model", get_model_id(model)),
        ("method", c.method),
        ("pole", pole),
        ("poles of the pair", ", ".join(c.poles) if c.poles else "-"),
        ("sparsity (fraction of each masked row removed)", f"{c.sparsity:g}"),
        ("density of the masked layers", f"{mask.density():.4f}"),
        ("masked layers", f"{len(mask.masks)} ({c.modules})"),
        ("weights dtype", dtype_name(model)),
        ("dtype the mask was built in", c.dtype or "-"),
        ("soft gate gamma", f"{gamma:g}" + (" (pruned weights zeroed)" if gamma == 0 else " (pruned weights scaled)")),
        ("channel statistic", c.statistic or "-"),
        ("calibration tokens", c.tokens or "-"),
        ("calibration data set", c.dataset or "-"),
        ("calibration hash", c.calibration_hash or "-"),
        ("persona_circuits version", __version__),
    ]
    table = "\n".join(f"| {k} | {v} |" for k, v in rows)
    return f"""---
library_name: transformers
tags:
- persona-circuits
- pruning
---

# {pole} persona of {get_model_id(model)}

The base model with the **{c.method}** mask of the pole **{pole}** applied: in every masked linear
layer, each row keeps the share of its weights that the method selects and the others are
{"set to zero" if gamma == 0 else f"scaled by {gamma:g}"}. No weight was trained: persona masks are found from the
activation statistics of calibration texts ("Your Language Model Secretly Contains Personality
Subnetworks", Ye et al., ICLR 2026). Written by `persona_circuits` (`persona-circuits export`); the
architecture and every other weight are the base model's.

| | |
| --- | --- |
{table}

`{MASK_FILENAME}` holds the mask's full metadata.

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

if TYPE_CHECKING:
    from .loading import Model

model = AutoModelForCausalLM.from_pretrained("{out_name}")
tokenizer = AutoTokenizer.from_pretrained("{out_name}")
messages = [{{"role": "user", "content": "How would you spend a free Saturday?"}}]
enc = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
out = model.generate(**enc, max_new_tokens=64, do_sample=False)
print(tokenizer.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
```
"""


def export_model(model: Model, mask: Mask, out: str | Path, *, overwrite: bool = False, gamma: float = 0.0) -> Path:
    """Write ``model`` with ``mask`` applied to the folder ``out`` as a Hugging Face checkpoint.

    Args:
        model: a model from :func:`~persona_circuits.model.loading.load_model`.
        mask: the mask of one pole (see :func:`~persona_circuits.masks.build.load_masks`).
        out: output folder; written atomically (all or nothing).
        overwrite: replace an existing ``out`` (otherwise :class:`OutputError`).
        gamma: soft gate, as in :func:`~persona_circuits.model.interventions.apply_mask`.

    Returns:
        ``out`` as a Path. The model's own weights are unchanged afterwards.
    """
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputError(f"output already exists: {out} (pass --overwrite to replace it)")
    mask.check_model(model)
    hf = hf_model(model)
    tok = get_tokenizer(model)
    with atomic_directory(out, overwrite=overwrite) as tmp:
        with apply_mask(model, mask, gamma=gamma):
            plain = _plain_model(hf, _clean_state_dict(hf))
            plain.save_pretrained(tmp, safe_serialization=True)
        del plain
        tok.save_pretrained(tmp)
        # dtype: the checkpoint's weights; mask_dtype: the model's dtype when the mask was built
        meta = {**mask.config.to_dict(), "gamma": gamma, "density": mask.density(), "base_model": get_model_id(model),
                "dtype": dtype_name(model), "mask_dtype": mask.config.dtype}
        (tmp / MASK_FILENAME).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        (tmp / "README.md").write_text(model_card(model, mask, gamma=gamma, out_name=str(out)))
        umask = os.umask(0)
        os.umask(umask)
        for f in tmp.iterdir():  # some writers create 0600 files; give them the usual permissions
            os.chmod(f, 0o666 & ~umask)
    return out
