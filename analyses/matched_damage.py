"""Draw figures/matched_damage.png from a study's results.json: `python analyses/matched_damage.py runs/full/results.json --out figures`."""

import sys

from persona_circuits.plots import script_main

if __name__ == "__main__":
    sys.exit(script_main("matched_damage"))
