"""Inner optimizers: how a memory is written (NL sec. 2.2-2.3: optimizers are associative memories).

Every rule is a pure function of an explicit :class:`MemoryState` (``rules.state``), with a slow
per-token reference beside its chunk-parallel path, equal in float64:

- :mod:`hope_lite.rules.titans`: gradient descent with momentum and forgetting (Titans eq 9-18);
  :mod:`hope_lite.rules.titans_scan` runs its whole chunks with a backward written by hand.
- :mod:`hope_lite.rules.dgd`: Delta Gradient Descent with weight decay and momentum
  (NL eq 56-57, 86-88, 90, 93), the rule of self-modifying Titans and HOPE;
  :mod:`hope_lite.rules.dgd_scan` runs its chunks with a backward written by hand.
"""

from hope_lite.rules.dgd import dgd_update, dgd_update_chunked, dgd_update_reference
from hope_lite.rules.state import (
    DECAY_TARGETS,
    MemoryState,
    check_inputs,
    clip_factor,
    init_state,
    shift,
    surprise_norm,
)
from hope_lite.rules.titans import (
    chunk_coefficients,
    titans_update,
    titans_update_chunked,
    titans_update_reference,
)

__all__ = [
    "DECAY_TARGETS",
    "MemoryState",
    "check_inputs",
    "chunk_coefficients",
    "clip_factor",
    "dgd_update",
    "dgd_update_chunked",
    "dgd_update_reference",
    "init_state",
    "shift",
    "surprise_norm",
    "titans_update",
    "titans_update_chunked",
    "titans_update_reference",
]
