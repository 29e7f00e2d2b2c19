"""Analyses that test whether persona behaviour is "already embedded" (one module each); each is
built so that it can fail: against a null, a control or a baseline it must beat.

* :mod:`.features`  - one calibration pass: per-text activation statistics and residual features;
  mean answer-token embeddings; residual features of plain (neutral) texts;
* :mod:`.sparsity`  - mask density per layer and module type;
* :mod:`.overlap`   - Jaccard and difference rate between masks, against random masks;
* :mod:`.probes`    - linear probes decoding the pole, against a bag-of-words and an embedding probe,
  with a shuffled control; decoding which pole's mask / prompt is active from neutral text;
* :mod:`.similarity` - split-half reliability of the poles' difference direction against a
  label-permutation null (and the paper's cosine of the means, for comparison only);
* :mod:`.stability` - masks from bootstrap resamples of the calibration set;
* :mod:`.ablation`  - restore layer groups inside both poles' masks (pole contrast, gated on a test);
  remove top contrastive vs top pooled-Wanda vs random weights at matched count per row;
* :mod:`.capability` - perplexity on neutral text and accuracy on a general-knowledge choice set.
"""
