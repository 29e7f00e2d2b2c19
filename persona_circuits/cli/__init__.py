"""The ``persona-circuits`` command: :mod:`.main` (the parser and ``main``), :mod:`.common` (what every command
shares: loading the model the global options name, argument checks), and one module per command family:
:mod:`.evaluate`, :mod:`.mbti_types` (``mask --type``), :mod:`.reproduce` (``reproduce``, ``merge``,
``verdicts``), :mod:`.shard` (``reproduce --shard``). Nothing in the package imports ``cli``; importing it
(and answering ``--help`` or an argument error) imports neither torch nor transformers."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
