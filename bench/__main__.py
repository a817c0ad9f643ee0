"""`python -m bench`: the whole suite (see bench/suite.py); `make bench` runs this."""

import sys

from bench.suite import main

sys.exit(main())
