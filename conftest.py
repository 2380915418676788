"""pytest, for the whole repository: the notebooks under nbval run at their CI sizes.

nbval runs each notebook as stored, whose ``FAST = False`` are the learner's sizes; every notebook's
"Derived values" cell reads HOPE_LITE_FAST=1 as FAST = True. The kernels nbval starts inherit this
environment. (papermill runs in tests/test_notebooks.py pass FAST = True as a parameter instead.)
"""

import os

os.environ.setdefault("HOPE_LITE_FAST", "1")
