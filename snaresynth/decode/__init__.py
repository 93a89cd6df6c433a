"""Decoding latent points into playback buffers, off the audio thread (a worker thread or a
child process), with a cache of recent buffers."""
