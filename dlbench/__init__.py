"""dlbench: put the classic claims of deep-learning theory to the test."""

__version__ = "0.1.0"
