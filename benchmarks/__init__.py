"""`make bench`: Airloop measured side by side with its peers; `python -m benchmarks.run` runs it."""
