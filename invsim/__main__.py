"""``python -m invsim``: the ``invsim`` command (:mod:`invsim.cli`)."""

from invsim.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    main()
