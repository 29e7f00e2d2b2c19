"""Execute a notebook top to bottom and save it in place with its outputs (``make notebook``).

The committed ``walkthrough.ipynb`` carries its outputs, so its figures show when browsing the
repository. Execution timestamps are not recorded and cell ids are kept, so a rerun on the same
versions changes only what the code prints or draws.

    python notebooks/execute.py notebooks/walkthrough.ipynb [--timeout 1200]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def execute(path: Path, timeout: int = 1200) -> None:
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False,
                                     resources={"metadata": {"path": str(path.parent)}})
    client.execute()
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
    nb.metadata.pop("widgets", None)
    nbformat.validate(nb)
    tmp = path.with_suffix(".ipynb.tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", type=Path)
    p.add_argument("--timeout", type=int, default=1200, help="seconds per cell (default 1200)")
    args = p.parse_args(argv)
    execute(args.notebook, args.timeout)
    print(f"executed {args.notebook} and saved it with its outputs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
