"""The engine: where the control threads, the decode worker and the audio side meet."""
