"""Inner optimizers: how a memory is written (NL sec. 2.2-2.3: optimizers are associative memories).

The Titans rule (GD with momentum and forgetting, Titans eq 9-18) lives in ``hope_lite.functional``;
this package holds the other rules, as pure functions with the same explicit
:class:`~hope_lite.functional.MemoryState`:

- :mod:`hope_lite.rules.dgd`: Delta Gradient Descent with weight decay and momentum
  (NL eq 56-57, 86-88, 90, 93), the rule of self-modifying Titans and HOPE.
"""

from hope_lite.rules.dgd import dgd_update_chunked, dgd_update_reference

__all__ = ["dgd_update_chunked", "dgd_update_reference"]
