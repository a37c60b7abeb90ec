"""Data in: the landing zone, sources over a run's data interval, and immutable snapshots."""
