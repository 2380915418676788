"""``python -m hope_lite``: the experiment command line (:mod:`hope_lite.cli`)."""

from hope_lite.cli import main

raise SystemExit(main())
