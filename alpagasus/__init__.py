"""alpagasus: rate instruction data with an LLM judge, keep the best, fine-tune, compare."""

__version__ = "0.1.0"
