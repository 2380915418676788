"""``python -m hope_lite.training``: the training command line (:mod:`hope_lite.training.cli`)."""

from hope_lite.training.cli import main

main()
