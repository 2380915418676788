"""Layers built from memories, update rules and update frequencies."""

from hope_lite.layers.neural_memory import NeuralMemory, NeuralMemoryConfig, NeuralMemoryState

__all__ = ["NeuralMemory", "NeuralMemoryConfig", "NeuralMemoryState"]
