"""Cache layers: query embeddings (L1), search results (L2) and sessions (L3), in process or shared in Redis."""
