"""Collections and documents: the catalog, ingest (the first phase of every write) and deletion."""
