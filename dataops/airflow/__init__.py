"""What only Airflow uses: the plugin's Datasets page and the DAG's params form.

`page` renders the Datasets page (`templates/`, `static/`) over `dataops.release.versions`;
`params` checks and applies the values a user edits in the trigger form to `params.yaml`.
Imported only by `dags/` and `plugins/`. Every import in the project is absolute, so
`import airflow` anywhere is the real Airflow, never this package.
"""
