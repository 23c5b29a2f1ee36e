"""Models: bi-encoders (bundled MiniLM, bundled ONNX bge-small, local sentence-transformers
folders, the model-free hashing encoder), cross-encoders, devices, and the on-disk embedding cache
(:mod:`.encoders`)."""
