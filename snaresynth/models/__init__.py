"""Model families, the Decoder contract and the registry (TensorFlow is imported lazily)."""
