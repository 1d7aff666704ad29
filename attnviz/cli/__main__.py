"""``python -m attnviz.cli ...``: the ``attnviz`` command."""

import sys

from . import main

sys.exit(main())
