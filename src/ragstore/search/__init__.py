"""Search: dense retrieval joined to SQL, filters."""
