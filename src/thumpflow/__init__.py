"""thumpflow: a healthcare integration engine for event flow and scheduled batch exchange."""

__version__ = "0.1.0"
