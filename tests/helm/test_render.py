"""The chart rendered with its defaults and with each values file of
tests/helm/values: every core object validates strictly (no unknown field,
every type right) against the Kubernetes schemas of the oldest version the
chart supports and of the newest the pinned kubernetes-validate ships; the
KEDA and Prometheus Operator objects against models generated from those
projects' CRDs; and the objects refer to each other correctly."""

from __future__ import annotations

import hashlib
import re
import tomllib

import kubernetes_validate
import pytest
import yaml
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor

from helm_render import (CHART_DIR, COMPONENTS, NAMESPACE, ROOT, VALUES_FILES, by_kind, component_of, deep_merge,
                         deployments, load_values, render_manifests, render_objects, strip)

# The chart's kubeVersion floor, and the newest schemas kubernetes-validate 1.37.0 holds.
KUBE_VERSIONS = ("1.30.0", "1.37.0")
CRD_MODELS = {"ScaledObject": ScaledObject, "ServiceMonitor": ServiceMonitor, "PrometheusRule": PrometheusRule}
CASES = ["defaults", *VALUES_FILES]


def values_of(case: str) -> dict:
    return {} if case == "defaults" else load_values(case)


@pytest.fixture(scope="module", params=CASES)
def rendered(request):
    return request.param, render_objects(values_of(request.param))


def test_chart_supports_the_oldest_version_checked():
    meta = yaml.safe_load((CHART_DIR / "Chart.yaml").read_text())
    assert meta["kubeVersion"] == f">={KUBE_VERSIONS[0]}-0"


def test_core_objects_validate_strictly(rendered):
    case, objects = rendered
    core = [o for o in objects if o["kind"] not in CRD_MODELS]
    assert len(core) >= 12, case
    for obj in core:
        for version in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(strip(obj), version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{case}: {obj['kind']}/{obj['metadata']['name']} ({obj['__template__']}) "
                            f"on {version}: {e.message} at {list(e.path)}")


def _diff(given, parsed, path=""):
    """Where a model's dump differs from the input: dropped (unknown) fields, coerced values."""
    if isinstance(given, dict) and isinstance(parsed, dict):
        out = [f"{path}.{k}: unknown field" for k in given if k not in parsed]
        return out + [d for k in given if k in parsed for d in _diff(given[k], parsed[k], f"{path}.{k}")]
    if isinstance(given, list) and isinstance(parsed, list) and len(given) == len(parsed):
        return [d for i, (a, b) in enumerate(zip(given, parsed)) for d in _diff(a, b, f"{path}[{i}]")]
    return [] if given == parsed else [f"{path}: {given!r} read as {parsed!r}"]


def validate_crd_object(obj: dict) -> list[str]:
    model = CRD_MODELS[obj["kind"]].model_validate(obj)
    return _diff(obj, model.model_dump(by_alias=True, exclude_unset=True, mode="json"))


def test_operator_objects_validate_strictly(rendered):
    case, objects = rendered
    for obj in objects:
        if obj["kind"] in CRD_MODELS:
            assert validate_crd_object(strip(obj)) == [], f"{case}: {obj['kind']}/{obj['metadata']['name']}"


def test_the_crd_check_catches_an_unknown_field_and_a_wrong_type():
    (so,) = [strip(o) for o in render_objects(load_values("production")) if o["kind"] == "ScaledObject"
             and component_of(o) == "extractor"]
    so["spec"]["triggers"][0]["metadatas"] = {}
    assert validate_crd_object(so) == [".spec.triggers[0].metadatas: unknown field"]
    so["spec"]["minReplicaCount"] = "one"
    with pytest.raises(ValueError):
        validate_crd_object(so)


def test_every_service_is_a_hardened_deployment(rendered):
    case, objects = rendered
    deps = deployments(objects)
    assert set(deps) == set(COMPONENTS), case
    for component, d in deps.items():
        pod = d["spec"]["template"]["spec"]
        (c,) = pod["containers"]
        assert c["command"] == ["memsy"] and c["args"][0] == component, (case, component)
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"] and sc["capabilities"]["drop"] == ["ALL"]
        assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/livez", "port": "http"}
        port = int(c["args"][c["args"].index("--http-addr") + 1].rsplit(":", 1)[1])
        assert {p["name"]: p["containerPort"] for p in c["ports"]}["http"] == port
        assert "checksum/config" in d["spec"]["template"]["metadata"]["annotations"]
        assert c["resources"]["requests"]["cpu"]


def test_stages_drain_longer_than_they_are_given_to_stop():
    deps = deployments(render_objects({}))
    # The embedder's model load may take minutes: the startup probe allows 5.
    probe = deps["embedder"]["spec"]["template"]["spec"]["containers"][0]["startupProbe"]
    assert probe["periodSeconds"] * probe["failureThreshold"] >= 300
    for component in ("extractor", "embedder", "indexer"):
        pod = deps[component]["spec"]["template"]["spec"]
        # Longer than the ack wait, so a batch in hand is finished and acked, not redelivered.
        assert pod["terminationGracePeriodSeconds"] > 30, component
    gateway = deps["gateway"]["spec"]["template"]["spec"]
    assert gateway["containers"][0]["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert gateway["terminationGracePeriodSeconds"] > 5


def test_a_config_change_rolls_the_pods():
    before = deployments(render_objects({}))["indexer"]
    after = deployments(render_objects({"config": {"indexer": {"batch_size": 128}}}))["indexer"]
    key = "checksum/config"
    assert before["spec"]["template"]["metadata"]["annotations"][key] != after["spec"]["template"]["metadata"]["annotations"][key]
    manifests = render_manifests({"config": {"indexer": {"batch_size": 128}}})
    config_map = manifests["memsy/templates/configmap.yaml"]
    assert after["spec"]["template"]["metadata"]["annotations"][key] == hashlib.sha256(config_map.encode()).hexdigest()


def test_config_block_becomes_the_toml_memsy_reads(rendered):
    case, objects = rendered
    (cm,) = by_kind(objects, "ConfigMap").values()
    assert tomllib.loads(cm["data"]["memsy.toml"]) == values_of(case).get("config", {})


def test_toml_keeps_integers_integers_and_quotes_odd_keys():
    config = {"nats": {"max_deliver": 7}, "indexer": {"duplicate_similarity": 0.9, "batch_size": 1000000},
              "llm": {"temperature": 0.5, "url": "https://x.example/v1?a=\"b\""},
              "usage": {"orgs": {"acme.eu": "team", "a b": "team"}, "plans": {"team": {"limits": {"llm_tokens": 5}}}}}
    (cm,) = by_kind(render_objects({"config": config}), "ConfigMap").values()
    text = cm["data"]["memsy.toml"]
    assert "max_deliver = 7\n" in text and "batch_size = 1000000\n" in text
    assert tomllib.loads(text) == config


def test_wiring_between_services(rendered):
    case, objects = rendered
    services = by_kind(objects, "Service")
    deps = deployments(objects)

    def selects(svc, component):
        labels = deps[component]["spec"]["template"]["metadata"]["labels"]
        return all(labels.get(k) == v for k, v in svc["spec"]["selector"].items())

    def env(component):
        return {e["name"]: e for e in deps[component]["spec"]["template"]["spec"]["containers"][0]["env"]}

    for component in COMPONENTS:
        assert any(selects(s, component) and s["metadata"]["labels"].get("memsy.io/metrics") == "true"
                   for s in services.values()), (case, component)
    if case == "local":
        return  # addresses are 127.0.0.1 there (chart_topology's tests cover them)
    for client, target, var in [("gateway", "status", "MEMSY__STATUS__URL"), ("extractor", "status", "MEMSY__STATUS__URL"),
                                ("embedder", "status", "MEMSY__STATUS__URL"), ("indexer", "status", "MEMSY__STATUS__URL"),
                                ("gateway", "embedder", "MEMSY__EMBEDDER__URL")]:
        m = re.fullmatch(r"http://([^:]+):(\d+)", env(client)[var]["value"])
        assert m, (case, client, var)
        svc = services[m.group(1)]
        assert selects(svc, target)
        grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
        assert grpc["port"] == int(m.group(2))
        listen = env(target)[f"MEMSY__{target.upper()}__GRPC_ADDR"]["value"]
        assert listen.endswith(f":{grpc['port']}") and grpc["targetPort"] == "grpc"
    # Only the services that use Qdrant get its URL (and key).
    assert {c for c in COMPONENTS if "QDRANT_URL" in env(c)} == {"gateway", "indexer"}


def test_tracing_sets_the_otel_variables_only_with_an_endpoint():
    assert not any(e["name"].startswith("OTEL_")
                   for d in deployments(render_objects({})).values()
                   for e in d["spec"]["template"]["spec"]["containers"][0]["env"])
    deps = deployments(render_objects(load_values("production")))
    for component in COMPONENTS:
        env = deps[component]["spec"]["template"]["spec"]["containers"][0]["env"]
        by_name = {e["name"]: e for e in env}
        assert by_name["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.monitoring:4317"
        assert by_name["OTEL_EXPORTER_OTLP_PROTOCOL"]["value"] == "grpc"
        assert by_name["OTEL_SERVICE_NAME"]["value"] == f"memsy-{component}"
        assert by_name["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
        assert by_name["OTEL_EXPORTER_OTLP_HEADERS"]["valueFrom"]["secretKeyRef"] == {"name": "otel-auth", "key": "headers"}
        attrs = dict(kv.split("=", 1) for kv in by_name["OTEL_RESOURCE_ATTRIBUTES"]["value"].split(","))
        assert attrs["k8s.pod.name"] == "$(MEMSY_POD_NAME)" and attrs["deployment.environment"] == "prod"
        # Kubernetes expands $(VAR) only from variables defined before it.
        names = [e["name"] for e in env]
        assert names.index("MEMSY_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
        assert by_name["MEMSY_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"


def test_autoscaled_deployments_leave_replicas_to_the_autoscaler():
    objects = render_objects(load_values("production"))
    deps = deployments(objects)
    hpas = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    scaled = {o["spec"]["scaleTargetRef"]["name"] for o in objects if o["kind"] == "ScaledObject"}
    assert hpas == {"memsy-gateway"}
    assert scaled == {"memsy-extractor", "memsy-embedder", "memsy-indexer"}
    for component, d in deps.items():
        assert ("replicas" in d["spec"]) == (component == "status"), component


def test_without_keda_the_stages_fall_back_to_cpu_hpas():
    values = deep_merge(load_values("production"), {"keda": {"enabled": False}})
    objects = render_objects(values)
    hpas = {o["spec"]["scaleTargetRef"]["name"]: o for o in objects if o["kind"] == "HorizontalPodAutoscaler"}
    assert set(hpas) == {"memsy-gateway", "memsy-extractor", "memsy-embedder", "memsy-indexer"}
    assert not [o for o in objects if o["kind"] == "ScaledObject"]
    # An HPA cannot go to zero; KEDA could.
    assert hpas["memsy-extractor"]["spec"]["minReplicas"] == 1
    assert hpas["memsy-embedder"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def _topology_rs() -> str:
    return (ROOT / "services" / "memsy-bus" / "src" / "topology.rs").read_text()


def _const(name: str) -> str:
    m = re.search(rf'pub const {name}: &str = "([^"]+)";', _topology_rs())
    assert m, name
    return m.group(1)


def test_keda_triggers_name_the_streams_and_consumers_memsy_uses():
    objects = render_objects(load_values("production"))
    so = {component_of(o): o for o in objects if o["kind"] == "ScaledObject"}
    meta = {c: [t["metadata"] for t in so[c]["spec"]["triggers"]] for c in so}
    assert [(m["stream"], m["consumer"]) for m in meta["extractor"]] == [(_const("EVENTS_STREAM"), _const("EXTRACTOR_CONSUMER"))]
    assert [(m["stream"], m["consumer"]) for m in meta["embedder"]] == [(_const("EXTRACTED_STREAM"), _const("EMBEDDER_CONSUMER"))]
    # The indexer: one trigger per partition consumer, indexer_consumer(p) = "{INDEXER_CONSUMER}-{p}".
    assert 'format!("{INDEXER_CONSUMER}-{partition}")' in _topology_rs()
    partitions = load_values("production")["config"]["nats"]["indexer_partitions"]
    assert [(m["stream"], m["consumer"]) for m in meta["indexer"]] == [
        (_const("EMBEDDED_STREAM"), f"{_const('INDEXER_CONSUMER')}-{p}") for p in range(partitions)]
    for m in meta["extractor"] + meta["embedder"] + meta["indexer"]:
        assert m["natsServerMonitoringEndpoint"] == "nats.messaging.svc:8222" and m["account"] == "$G"
    names = [t["name"] for t in so["indexer"]["spec"]["triggers"]]
    formula = so["indexer"]["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert set(re.findall(r"partition_\d+", formula)) == set(names)


def eval_formula(formula: str, env: dict[str, int]) -> int:
    """Evaluates the subset of expr-lang (KEDA's formula language) the chart
    writes: integers, names, `+`, `>`, parentheses and `cond ? a : b`
    (lowest precedence, right-associative). Anything else is refused."""
    tokens = re.findall(r"\d+|[A-Za-z_]\w*|[<>=!]=|\S", formula)
    pos = 0

    def take(expected=None):
        nonlocal pos
        tok = tokens[pos]
        if expected is not None and tok != expected:
            raise ValueError(f"expected {expected!r} at {pos}, found {tok!r}")
        pos += 1
        return tok

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def ternary():
        cond = comparison()
        if peek() != "?":
            return cond
        take("?")
        a = ternary()
        take(":")
        b = ternary()
        return a if cond else b

    def comparison():
        left = total()
        if peek() == ">":
            take(">")
            return int(left > total())
        return left

    def total():
        value = atom()
        while peek() == "+":
            take("+")
            value += atom()
        return value

    def atom():
        tok = take()
        if tok == "(":
            value = ternary()
            take(")")
            return value
        if tok.isdigit():
            return int(tok)
        if re.fullmatch(r"[A-Za-z_]\w*", tok):
            return env[tok]
        raise ValueError(f"unexpected {tok!r}")

    value = ternary()
    assert pos == len(tokens), f"trailing input at {pos}"
    return value


@pytest.mark.parametrize("pending,expected", [
    ({}, 0),                                  # nothing waits: none (down to minReplicas)
    ({3: 5}, 1),                              # a little waits: one replica
    ({3: 500}, 1),
    ({3: 500, 7: 101, 9: 100}, 2),            # two partitions past the threshold
    ({p: 1000 for p in range(16)}, 16),
])
def test_indexer_formula_asks_for_the_busy_partitions(pending, expected):
    objects = render_objects(load_values("production"))
    (so,) = [o for o in objects if o["kind"] == "ScaledObject" and component_of(o) == "indexer"]
    formula = so["spec"]["advanced"]["scalingModifiers"]["formula"]
    assert eval_formula(formula, {f"partition_{p}": pending.get(p, 0) for p in range(16)}) == expected


def test_pdbs_select_their_deployments():
    objects = render_objects(load_values("production"))
    deps = deployments(objects)
    pdbs = {component_of(o): o for o in objects if o["kind"] == "PodDisruptionBudget"}
    assert set(pdbs) == set(COMPONENTS)
    for component, pdb in pdbs.items():
        assert pdb["spec"]["selector"] == deps[component]["spec"]["selector"]
    assert pdbs["gateway"]["spec"] == {"minAvailable": 2, "selector": deps["gateway"]["spec"]["selector"]}


def test_network_policies_admit_only_the_callers():
    objects = render_objects(load_values("production"))
    policies = {component_of(o): o["spec"] for o in objects if o["kind"] == "NetworkPolicy"}
    assert set(policies) == set(COMPONENTS)

    def admitted(component, port):
        out = []
        for rule in policies[component]["ingress"]:
            if any(p["port"] == port for p in rule["ports"]):
                out += rule["from"]
        return out

    status = admitted("status", "grpc")
    assert status == [{"podSelector": {
        "matchLabels": {"app.kubernetes.io/name": "memsy", "app.kubernetes.io/instance": "memsy"},
        "matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In",
                              "values": ["gateway", "extractor", "embedder", "indexer"]}]}}]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in admitted("embedder", "grpc")] == ["gateway"]
    gateway = admitted("gateway", "http")
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}} in gateway
    # The helm test pod reaches the gateway too.
    assert any(p.get("podSelector", {}).get("matchLabels", {}).get("app.kubernetes.io/component") == "test" for p in gateway)
    for component in ("extractor", "indexer"):
        assert admitted(component, "grpc") == []
        assert admitted(component, "http") == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_servicemonitor_scrapes_each_pod_once():
    objects = render_objects(load_values("production"))
    (sm,) = by_kind(objects, "ServiceMonitor").values()
    selector = sm["spec"]["selector"]["matchLabels"]
    scraped = [s for s in by_kind(objects, "Service").values()
               if all(s["metadata"]["labels"].get(k) == v for k, v in selector.items())]
    assert sorted(component_of(s) for s in scraped) == sorted(COMPONENTS)
    for s in scraped:
        assert any(p["name"] == "http" for p in s["spec"]["ports"])
    assert sm["spec"]["endpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "scrapeTimeout": "10s"}]


def test_prometheus_rules_read_the_metric_names_from_values():
    names = {"pendingMessages": "x_pending", "dlqMessages": "x_dlq", "httpRequests": "x_http_total", "podReady": "x_ready"}
    values = deep_merge(load_values("production"), {"metrics": {"prometheusRule": {"names": names}}})
    (rule,) = by_kind(render_objects(values), "PrometheusRule").values()
    rules = {r["alert"]: r for r in rule["spec"]["groups"][0]["rules"]}
    assert set(rules) == {"MemsyConsumerLagGrowing", "MemsyDeadLetters", "MemsyHighErrorRate",
                          "MemsyReadinessFlapping", "MemsyTargetDown"}
    exprs = " ".join(r["expr"] for r in rules.values())
    for name in names.values():
        assert name in exprs
    assert "memsy_" not in exprs
    # Alert templates reach Prometheus unrendered by Helm.
    assert rules["MemsyConsumerLagGrowing"]["annotations"]["summary"].startswith("{{ $labels.consumer }}")


def test_secrets_chart_managed_or_existing():
    objects = render_objects(load_values("production"))
    (secret,) = by_kind(objects, "Secret").values()
    assert set(secret["data"]) == {"llm-api-key", "qdrant-api-key"}
    deps = deployments(objects)
    gw = {e["name"]: e for e in deps["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert gw["MEMSY__LLM__API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "memsy-secrets", "key": "llm-api-key"}
    assert gw["QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "memsy-secrets", "key": "qdrant-api-key"}

    objects = render_objects(load_values("external-secrets"))
    assert by_kind(objects, "Secret") == {}
    deps = deployments(objects)

    def env(component):
        return {e["name"]: e for e in deps[component]["spec"]["template"]["spec"]["containers"][0]["env"]}

    assert env("embedder")["MEMSY__EMBEDDER__REMOTE_API_KEY"]["valueFrom"]["secretKeyRef"] == {
        "name": "memsy-credentials", "key": "embeddings", "optional": True}
    assert env("indexer")["QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "qdrant"
    for component in COMPONENTS:
        assert env(component)["MEMSY__NATS__URL"]["valueFrom"]["secretKeyRef"] == {"name": "memsy-nats", "key": "url"}
    for component in ("gateway", "extractor", "status"):
        assert env(component)["MEMSY__REDIS__URL"]["valueFrom"]["secretKeyRef"] == {"name": "memsy-redis", "key": "url"}
    # The test pod reads the key from where the bootstrap Job put it.
    (pod,) = [o for o in objects if o["kind"] == "Pod"]
    assert pod["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "memsy-admin", "key": "key"}


def test_bootstrap_job_mints_the_admin_key_into_its_secret():
    objects = render_objects({})
    (job,) = by_kind(objects, "Job").values()
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install"
    pod = job["spec"]["template"]["spec"]
    (mint,) = pod["initContainers"]
    script = mint["args"][0]
    assert 'memsy --config /etc/memsy/memsy.toml keys create --org "$ORG" --scopes "$SCOPES"' in script
    env = {e["name"]: e.get("value") for e in mint["env"]}
    assert env["SCOPES"] == "read,write,admin" and env["SECRET_NAME"] == "memsy-admin-key"
    assert env["MEMSY__NATS__URL"] == "nats://nats:4222"
    (store,) = pod["containers"]
    assert store["args"] == ["apply", "--filename", "/bootstrap/secret.yaml"]
    (role,) = by_kind(objects, "Role").values()
    assert {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["memsy-admin-key"],
            "verbs": ["get", "patch", "update"]} in role["rules"]
    assert pod["serviceAccountName"] == "memsy-bootstrap"
    (binding,) = by_kind(objects, "RoleBinding").values()
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "memsy-bootstrap", "namespace": NAMESPACE}]


def test_subcharts_wire_memsy_to_them():
    values = {"nats": {"enabled": True}, "redis": {"enabled": True, "auth": {"enabled": True}}, "qdrant": {"enabled": True}}
    deps = deployments(render_objects(values, release="prod"))
    env = {e["name"]: e for e in deps["gateway"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MEMSY__NATS__URL"]["value"] == "nats://prod-nats:4222"
    assert env["QDRANT_URL"]["value"] == "http://prod-qdrant:6334"
    assert env["MEMSY_REDIS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "prod-redis", "key": "redis-password"}
    assert env["MEMSY__REDIS__URL"]["value"] == "redis://:$(MEMSY_REDIS_PASSWORD)@prod-redis-master:6379"
    names = list(env)
    assert names.index("MEMSY_REDIS_PASSWORD") < names.index("MEMSY__REDIS__URL")  # $(VAR) needs it first
    # Redis started by the chart keeps an append-only file.
    redis = yaml.safe_load((CHART_DIR / "values.yaml").read_text())["redis"]
    assert "appendonly yes" in redis["commonConfiguration"].splitlines()
    assert redis["master"]["persistence"]["enabled"] is True


def test_ingress_routes_to_the_gateway():
    objects = render_objects(load_values("production"))
    (ing,) = by_kind(objects, "Ingress").values()
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    svc = by_kind(objects, "Service")[backend["name"]]
    assert component_of(svc) == "gateway" and backend["port"] == {"name": "http"}
    assert ing["spec"]["tls"][0]["secretName"] == "memsy-tls"


def test_helm_test_pod_calls_health_with_the_key():
    (pod,) = [o for o in render_objects({}) if o["kind"] == "Pod"]
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    args = pod["spec"]["containers"][0]["args"]
    assert args[-1] == "http://memsy-gateway:8080/v1/health"
    assert "Authorization: Bearer $(MEMSY_API_KEY)" in args and "--fail-with-body" in args
    assert pod["spec"]["containers"][0]["env"][0]["valueFrom"]["secretKeyRef"] == {"name": "memsy-admin-key", "key": "api-key"}


def test_notes_say_where_the_key_and_the_api_are():
    notes = render_manifests({})["memsy/templates/NOTES.txt"]
    assert "kubectl get secret --namespace memsy memsy-admin-key -o jsonpath='{.data.api-key}'" in notes
    assert "http://memsy-gateway.memsy.svc:8080/v1" in notes and "MemsyClient(base_url=" in notes
    notes = render_manifests(load_values("production"))["memsy/templates/NOTES.txt"]
    assert "https://memsy.example.com/v1" in notes


def test_template_refusals():
    from helm_python import HelmRenderError

    with pytest.raises(HelmRenderError, match="only 16 partitions"):
        render_objects({"indexer": {"autoscaling": {"enabled": True, "maxReplicas": 20}}})
    with pytest.raises(HelmRenderError, match="only 4 partitions"):
        render_objects({"config": {"nats": {"indexer_partitions": 4}}, "indexer": {"replicas": 5}})
    with pytest.raises(HelmRenderError, match="minReplicas \\(5\\) exceeds maxReplicas \\(2\\)"):
        render_objects({"extractor": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}})
    with pytest.raises(HelmRenderError, match="no such Service would exist"):
        render_objects({"status": {"grpc": {"clientService": "headless", "headless": False}}})


def test_headless_clients_and_ipv6_listeners():
    objects = render_objects({"listenHost": "::", "embedder": {"grpc": {"clientService": "headless"}}})
    deps = deployments(objects)
    gw = deps["gateway"]["spec"]["template"]["spec"]["containers"][0]
    assert gw["args"][gw["args"].index("--http-addr") + 1] == "[::]:8080"
    env = {e["name"]: e["value"] for e in gw["env"] if "value" in e}
    assert env["MEMSY__EMBEDDER__URL"] == "http://memsy-embedder-headless:50052"
    assert env["MEMSY__STATUS__URL"] == "http://memsy-status:50051"
    headless = by_kind(objects, "Service")["memsy-embedder-headless"]
    assert headless["spec"]["clusterIP"] == "None" and "memsy.io/metrics" not in headless["metadata"]["labels"]


def test_network_policies_without_metrics_peers_deny_the_rest():
    values = {"networkPolicy": {"enabled": True, "metricsFrom": [], "gatewayFrom": []}}
    objects = render_objects(values)
    policies = {component_of(o): o for o in objects if o["kind"] == "NetworkPolicy"}
    for obj in policies.values():
        for version in KUBE_VERSIONS:
            kubernetes_validate.validate(strip(obj), version, strict=True)
    assert policies["extractor"]["spec"]["ingress"] == []
    (rule,) = policies["gateway"]["spec"]["ingress"]
    assert [p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule["from"]] == ["test"]
