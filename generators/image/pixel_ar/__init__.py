"""Class-conditional gated PixelCNN for images (own torch model)."""

from generators.image.pixel_ar.generator import PixelARGenerator

__all__ = ["PixelARGenerator"]
