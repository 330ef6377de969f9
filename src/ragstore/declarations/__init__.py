"""Declarations that several layers derive from and that must stay light to import: the application record
types (`record_spec`, `record_types`). The ORM models (`db/record_models.py`), the schemas, the service, the
routes and the commands are all made from them; `ragstore --help` builds the records commands from them
without importing the ORM or numpy."""
