"""Outbox sync to the vector index, the sync worker and the job queue."""
