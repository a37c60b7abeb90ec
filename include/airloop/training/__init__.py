"""Training: features from config, a scikit-learn Pipeline, metrics, and the MLflow run."""
