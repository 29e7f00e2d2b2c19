"""``python -m persona_circuits.cli``."""

import sys

from .main import main

sys.exit(main())
