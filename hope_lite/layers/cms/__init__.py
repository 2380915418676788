"""The Continuum Memory System (NL eq 70-74): MLP levels, each written at its own period.

- :mod:`~hope_lite.layers.cms.levels`: the levels and the layer (:class:`ContinuumMemory`), the
  sequential / independent / nested variants.
- :mod:`~hope_lite.layers.cms.online`: the levels written while reading (tokens are the clock).
- :mod:`~hope_lite.layers.cms.schedule`: the levels written between optimizer steps
  (:class:`CMSSchedule`, optimizer steps are the clock).
"""

from hope_lite.layers.cms.levels import CMSConfig, CMSLevel, ContinuumMemory
from hope_lite.layers.cms.online import CMSState
from hope_lite.layers.cms.schedule import CMSSchedule

__all__ = ["CMSConfig", "CMSLevel", "CMSSchedule", "CMSState", "ContinuumMemory"]
