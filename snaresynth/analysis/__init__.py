"""Offline tools: evaluation, the listener (snare classifier), latent-space pictures, rendering.
The daemon never imports this package."""
