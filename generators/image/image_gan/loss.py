"""The GAN's hinge losses (shared with conv_vae's critic)."""

from generators.image.conv_vae.loss import critic_hinge_loss, decoder_adversarial_loss

generator_hinge_loss = decoder_adversarial_loss

__all__ = ["critic_hinge_loss", "generator_hinge_loss"]
