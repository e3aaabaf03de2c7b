"""A query's whole life at the hub: term checks and planning, signing, delivery (push,
pull, Celery), recording answers, combining them, secure aggregation."""
