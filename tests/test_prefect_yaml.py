"""prefect.yaml stays in step with the flows it deploys."""

import inspect

import yaml
from conftest import REPO
from prefect.flows import load_flow_from_entrypoint


def deployments():
    return yaml.safe_load((REPO / "prefect.yaml").read_text(encoding="utf-8"))["deployments"]


def test_every_deployment_names_a_real_flow_and_only_its_parameters():
    for deployment in deployments():
        flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
        signature = inspect.signature(flow.fn)
        required = {n for n, p in signature.parameters.items() if p.default is inspect.Parameter.empty}
        assert set(deployment["parameters"]) <= set(signature.parameters), deployment["name"]
        assert required <= set(deployment["parameters"]), deployment["name"]


def test_the_nightly_run_is_at_two_copenhagen_time():
    (nightly,) = [d for d in deployments() if d["name"] == "nightly"]
    assert nightly["entrypoint"] == "flows/pipeline.py:run_pipeline"
    assert nightly["schedules"] == [{"cron": "0 2 * * *", "timezone": "Europe/Copenhagen"}]


def test_the_triggers_name_the_events_the_code_emits():
    from flows.events import (
        LANDED_EVENT,
        LANDED_RESOURCE_PREFIX,
        LOADED_EVENT,
        LOADED_RESOURCE_PREFIX,
    )

    triggers = {d["name"]: d["triggers"][0] for d in deployments() if d.get("triggers")}
    assert triggers["ingest-landed-file"]["expect"] == [LANDED_EVENT]
    assert triggers["ingest-landed-file"]["match"] == {"prefect.resource.id": f"{LANDED_RESOURCE_PREFIX}*"}
    assert triggers["materialize-after-loads"]["expect"] == triggers["materialize-after-loads"]["after"] == [LOADED_EVENT]
    assert triggers["materialize-after-loads"]["match"] == {"prefect.resource.id": f"{LOADED_RESOURCE_PREFIX}*"}
