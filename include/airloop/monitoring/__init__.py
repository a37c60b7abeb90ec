"""Monitoring: drift, data quality and delayed-label performance of the deployed model."""
