"""values.schema.json: Helm checks every install's values against it, so a
bad value fails at install, naming the key, instead of in a pod."""

from __future__ import annotations

import pytest
from helm_python import HelmRenderError, HelmValuesError

from helm_render import COMPONENTS, VALUES_FILES, chart, load_values, render_objects


@pytest.mark.parametrize("values_file", [None, *VALUES_FILES])
def test_shipped_values_are_valid(values_file):
    chart().validate_schema(load_values(values_file) if values_file else {})


BAD = [
    *[({c: {"replicas": -1}}, f"/{c}/replicas") for c in COMPONENTS],
    ({"config": {"embedder": {"engine": "gpu"}}}, "/config/embedder/engine"),
    ({"config": {"extractor": {"engine": "magic"}}}, "/config/extractor/engine"),
    # Provider keys go into secrets, never into the ConfigMap.
    ({"config": {"llm": {"api_key": "sk-1"}}}, "/config/llm"),
    ({"config": {"embedder": {"remote_api_key": "sk-1"}}}, "/config/embedder"),
    ({"config": {"qdrant": {"api_key": "k"}}}, "/config/qdrant"),
    # Addresses come from the chart's values, which would silently lose to a file entry.
    ({"config": {"nats": {"url": "nats://x:4222"}}}, "/config/nats"),
    ({"config": {"nats": {"indexer_partitions": 0}}}, "/config/nats/indexer_partitions"),
    ({"config": {"indexer": {"duplicate_similarity": 1.5}}}, "/config/indexer/duplicate_similarity"),
    ({"config": {"usage": {"plans": {"team": {"limits": {"bananas": 1}}}}}}, "/config/usage/plans/team/limits"),
    ({"config": {"nats": {"max_deliver": "5"}}}, "/config/nats/max_deliver"),
    ({"config": {"unknown_section": {}}}, "/config"),
    ({"gatway": {"replicas": 1}}, "gatway"),
    ({"gateway": {"ports": {"http": 70000}}}, "/gateway/ports/http"),
    ({"gateway": {"autoscaling": {"minReplicas": 0}}}, "/gateway/autoscaling/minReplicas"),
    ({"embedder": {"autoscaling": {"minReplicas": 0}}}, "/embedder/autoscaling/minReplicas"),
    ({"extractor": {"autoscaling": {"keda": {"lagThreshold": 0}}}}, "/extractor/autoscaling/keda/lagThreshold"),
    ({"indexer": {"autoscaling": {"keda": {"consumer": "indexer"}}}}, "/indexer/autoscaling/keda"),
    ({"status": {"grpc": {"clientService": "nodePort"}}}, "/status/grpc/clientService"),
    ({"gateway": {"pdb": {"maxUnavailable": "half"}}}, "/gateway/pdb/maxUnavailable"),
    ({"externalNats": {"url": "http://nats:4222"}}, "/externalNats/url"),
    ({"externalRedis": {"url": "redis:6379"}}, "/externalRedis/url"),
    ({"bootstrap": {"scopes": "read,root"}}, "/bootstrap/scopes"),
    ({"log": {"format": "xml"}}, "/log/format"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"metrics": {"prometheusRule": {"names": {"dlqMessages": "dlq-messages"}}}}, "/metrics/prometheusRule/names/dlqMessages"),
    ({"redis": {"enabled": "yes"}}, "/redis/enabled"),
]


@pytest.mark.parametrize("values,where", BAD, ids=[w for _, w in BAD])
def test_bad_values_are_refused_naming_the_key(values, where):
    with pytest.raises(HelmValuesError) as e:
        chart().validate_schema(values)
    assert where in str(e.value)
    # Rendering (as install does) refuses them too.
    with pytest.raises((HelmValuesError, HelmRenderError)):
        render_objects(values)


def test_subchart_values_pass_through():
    # Keys the chart does not know belong to the subcharts and are theirs to check.
    chart().validate_schema({"nats": {"enabled": True, "config": {"cluster": {"enabled": True, "replicas": 3}}},
                             "redis": {"replica": {"replicaCount": 2}}, "qdrant": {"apiKey": "k"}})
