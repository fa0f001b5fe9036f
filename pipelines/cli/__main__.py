"""``python -m pipelines.cli`` runs the ``speechfin`` command line."""

import sys

from pipelines.cli.main import main

sys.exit(main())
