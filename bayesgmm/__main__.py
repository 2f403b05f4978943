"""``python -m bayesgmm``: the command-line interface (see `bayesgmm.cli`)."""

import sys

from bayesgmm.cli import main

if __name__ == "__main__":
    sys.exit(main())
