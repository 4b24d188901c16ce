"""Talking to the Haiper API: the HTTP stack, the client, its models, retries, the rate limit,
the circuit breaker, and the run's HTTP engine. Imports nothing from sync/, store/ or analyst/."""
