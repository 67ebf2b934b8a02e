"""x3dsearch: progressive expansion search for efficient video networks."""
__version__ = "0.1.0"
