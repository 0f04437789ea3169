"""The ``layerloom`` entry point: subcommands go to the headless CLI before Qt is imported."""
from __future__ import annotations

import sys

from engine.cli import COMMANDS


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in COMMANDS:
        from engine.cli import main as cli_main

        return cli_main(argv)
    print("GUI not built yet")
    return 0


if __name__ == "__main__":
    sys.exit(main())
