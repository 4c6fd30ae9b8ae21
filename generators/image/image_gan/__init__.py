"""Class-conditional GAN for images (own torch model): upsample+conv generator, projection critic, hinge loss."""

from generators.image.image_gan.generator import ImageGANGenerator

__all__ = ["ImageGANGenerator"]
