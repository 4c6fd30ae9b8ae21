"""Class-conditional denoising diffusion model for images (own torch model)."""

from generators.image.image_diffusion.generator import ImageDiffusionGenerator

__all__ = ["ImageDiffusionGenerator"]
