"""Enrollment with a hub and pull mode: poll the hub for signed tasks, post signed answers."""
