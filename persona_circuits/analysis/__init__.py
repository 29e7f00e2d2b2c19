"""Analyses that test whether persona behaviour is "already embedded" (one module each).

* :mod:`.features`  - one calibration pass: per-text activation statistics and residual features;
* :mod:`.sparsity`  - mask density per layer and module type;
* :mod:`.overlap`   - Jaccard and difference rate between masks, against random masks;
* :mod:`.probes`    - linear probes decoding the pole from hidden states, with a shuffled control;
* :mod:`.similarity` - layer-wise cosine similarity of the poles' mean representations;
* :mod:`.stability` - masks from bootstrap resamples of the calibration set;
* :mod:`.ablation`  - restore layers inside a masked model; remove top-scored weights from the dense one;
* :mod:`.capability` - perplexity on neutral text and accuracy on a general-knowledge choice set.
"""
