"""What drives the facade over time: the scheduler, the job handlers and runner, the worker process.

These sit beside `api/` and `cli/`, above `service.py`, because each of them holds an open `RagStore`.
"""
