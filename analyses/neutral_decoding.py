"""Draw figures/neutral_decoding.png from a study's results.json: `python analyses/neutral_decoding.py runs/full/results.json --out figures`."""

import sys

from persona_circuits.plots import script_main

if __name__ == "__main__":
    sys.exit(script_main("neutral_decoding"))
