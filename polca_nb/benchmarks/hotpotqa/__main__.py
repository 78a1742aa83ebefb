"""`python -m polca_nb.benchmarks.hotpotqa download`: the data command (same as `... .hotpotqa.data`)."""

import sys

from .data import main

sys.exit(main())
