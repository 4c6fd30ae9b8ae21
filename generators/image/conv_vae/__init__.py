"""Class-conditional convolutional VAE for images (own torch model)."""

from generators.image.conv_vae.generator import ConvVAEGenerator

__all__ = ["ConvVAEGenerator"]
