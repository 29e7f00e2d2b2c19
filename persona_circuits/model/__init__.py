"""The model and what runs on it: loading (:mod:`.loading`: the embedded GGUF checkpoints, the TransformerLens
bridge, the prunable linear layers), compute types (:mod:`.dtypes`), the plain forward path the measurements
use (:mod:`.plain`, :mod:`.replay`, :mod:`.hooks`), the interventions that change it (:mod:`.interventions`:
masks and residual steering; :mod:`.steering_all`: one coefficient on every block), and the export of a masked
model as a plain Hugging Face checkpoint (:mod:`.export`).

Importing this package imports none of its modules (they need torch).
"""
