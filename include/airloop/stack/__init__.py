"""Running Airloop: the embedded services and a client for Airflow's REST API."""
