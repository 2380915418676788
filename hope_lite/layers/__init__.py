"""Layers built from memories, update rules and update frequencies."""

from hope_lite.layers.cms import CMSConfig, CMSLevel, CMSSchedule, CMSState, ContinuumMemory
from hope_lite.layers.neural_memory import NeuralMemory, NeuralMemoryConfig, NeuralMemoryState
from hope_lite.layers.self_modifying import (
    SelfModifyingConfig,
    SelfModifyingState,
    SelfModifyingTitans,
)

__all__ = [
    "CMSConfig",
    "CMSLevel",
    "CMSSchedule",
    "CMSState",
    "ContinuumMemory",
    "NeuralMemory",
    "NeuralMemoryConfig",
    "NeuralMemoryState",
    "SelfModifyingConfig",
    "SelfModifyingState",
    "SelfModifyingTitans",
]
