"""Tests of `dataops.airflow`, `dags/` and `plugins/`: the DAG, the trigger form, the Datasets page."""
