"""The MLflow Model Registry: challenger registration and champion promotion."""

CHAMPION = "champion"
CHALLENGER = "challenger"
