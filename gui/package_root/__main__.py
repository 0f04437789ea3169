"""``python -m layerloom``: the same entry point as the ``layerloom`` command."""
import sys

from layerloom.gui.main import main

sys.exit(main())
