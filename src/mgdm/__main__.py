"""``python -m mgdm``: the ``mgdm`` command line (:func:`mgdm.cli.main`)."""

import sys

from mgdm.cli import main

sys.exit(main())
