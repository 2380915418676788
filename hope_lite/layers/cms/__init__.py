"""The Continuum Memory System (NL eq 70-74): MLP levels, each written at its own period.

- :mod:`~hope_lite.layers.cms.config`: sizes, periods C(l), variant; which levels a position writes.
- :mod:`~hope_lite.layers.cms.levels`: the levels (residual MLP memories with a period) and the
  layer (:class:`ContinuumMemory`), the sequential / independent / nested variants.
- :mod:`~hope_lite.layers.cms.online`: the levels written while reading (tokens are the clock),
  given as explicit weights.
- :mod:`~hope_lite.layers.cms.schedule`: the levels written between optimizer steps
  (:class:`CMSSchedule`, optimizer steps are the clock).
"""

from hope_lite.layers.cms.config import CMSConfig
from hope_lite.layers.cms.levels import CMSLevel, ContinuumMemory
from hope_lite.layers.cms.online import CMSState
from hope_lite.layers.cms.schedule import CMSSchedule

__all__ = ["CMSConfig", "CMSLevel", "CMSSchedule", "CMSState", "ContinuumMemory"]
