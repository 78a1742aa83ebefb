"""`python -m polca_nb.benchmarks.veribench download`: the data command (same as `... .veribench.data`)."""

import sys

from .data import main

sys.exit(main())
