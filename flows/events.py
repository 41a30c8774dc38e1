"""The events boligdata emits, named once. prefect.yaml's triggers spell the same names (YAML cannot
import them); tests/test_prefect_yaml.py keeps the two in step."""

# A complete new file under landing (emitted by the watcher), per file: boligdata.extract.<source>/<file>
LANDED_EVENT = "boligdata.extract.landed"
LANDED_RESOURCE_PREFIX = "boligdata.extract."
# Deliveries written to a warehouse (emitted by a run), per warehouse: boligdata.warehouse.<path>
LOADED_EVENT = "boligdata.deliveries.loaded"
LOADED_RESOURCE_PREFIX = "boligdata.warehouse."
