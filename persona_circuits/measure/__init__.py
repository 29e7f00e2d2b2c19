"""Measurements on a model: choice scoring and pole contrasts (:mod:`.evaluation`; the released code's
scoring in :mod:`.released`), damage on neutral text and the dials that reach a target damage
(:mod:`.damage`, :mod:`.matching`, :mod:`.curves`), null draws and their tests (:mod:`.nulls`), and the
prompt, retrieval and fine-tuning baselines (:mod:`.baselines`).

Importing this package imports none of its modules (they need torch).
"""
