"""Search feedback, the query log and chunk analytics."""
