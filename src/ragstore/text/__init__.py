"""Text handling: loaders, chunking, hashing."""
