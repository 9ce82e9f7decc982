"""Recipe schema: pydantic models, one module per section."""

from .recipe import Recipe

__all__ = ["Recipe"]
