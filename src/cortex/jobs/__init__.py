"""The durable job system: procrastinate on the service's PostgreSQL (see system.py and defer.py)."""
