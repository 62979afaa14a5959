"""Checks the Kubernetes files of deploy/kubernetes beyond their schemas: the SpinApp's
fields (SpinKube's core.spinkube.dev/v1alpha1, which no offline schema validator
knows), and that every file refers to things that exist: Secrets and their keys, the
variables of spin.toml, the Services the Ingresses route to, and a runtime config that
maps the `default` database to libSQL. Run by tests/deploy_files.rs; exits non-zero with
the list of problems.
"""

import pathlib
import sys
import tomllib

import yaml

HERE = pathlib.Path(__file__).parent
ROOT = HERE.parent.parent


def documents():
    for path in sorted(HERE.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield path.name, doc


def main():
    problems = []
    docs = list(documents())
    by_kind = {}
    for name, doc in docs:
        by_kind.setdefault(doc["kind"], []).append((name, doc))
    secrets = {d["metadata"]["name"]: d for _, d in by_kind.get("Secret", [])}
    services = {d["metadata"]["name"] for _, d in by_kind.get("Service", [])}

    def secret_key(where, name, key):
        if name not in secrets:
            problems.append(f"{where}: no Secret {name}")
        elif key is not None and key not in secrets[name].get("stringData", {}):
            problems.append(f"{where}: Secret {name} has no key {key}")

    manifest = tomllib.loads((ROOT / "spin.toml").read_text())
    variables = manifest["variables"]
    required = {k for k, v in variables.items() if v.get("required")}

    apps = by_kind.get("SpinApp", [])
    if len(apps) != 1:
        problems.append(f"expected one SpinApp, found {len(apps)}")
    for name, app in apps:
        where = f"{name} SpinApp/{app['metadata']['name']}"
        if app.get("apiVersion") != "core.spinkube.dev/v1alpha1":
            problems.append(f"{where}: apiVersion {app.get('apiVersion')}")
        spec = app.get("spec", {})
        allowed = {"image", "executor", "replicas", "runtimeConfig", "variables", "resources",
                   "checks", "components", "deploymentAnnotations", "enableAutoscaling",
                   "imagePullSecrets", "invocationLimits", "podAnnotations", "podLabels",
                   "serviceAnnotations", "volumeMounts", "volumes"}
        for key in spec:
            if key not in allowed:
                problems.append(f"{where}: unknown field spec.{key}")
        if not isinstance(spec.get("image"), str):
            problems.append(f"{where}: spec.image must be a string")
        if not isinstance(spec.get("executor"), str):
            problems.append(f"{where}: spec.executor must be a string")
        if not (isinstance(spec.get("replicas"), int) and spec["replicas"] >= 1):
            problems.append(f"{where}: spec.replicas must be a positive integer")
        rc = spec.get("runtimeConfig", {}).get("loadFromSecret")
        secret_key(f"{where} runtimeConfig.loadFromSecret", rc, "runtime-config.toml")
        names = set()
        for v in spec.get("variables", []):
            names.add(v["name"])
            if v["name"] not in variables:
                problems.append(f"{where}: variable {v['name']} is not in spin.toml")
            if ("value" in v) == ("valueFrom" in v):
                problems.append(f"{where}: variable {v['name']} needs value or valueFrom")
            ref = v.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                secret_key(f"{where} variable {v['name']}", ref["name"], ref["key"])
        for missing in sorted(required - names):
            problems.append(f"{where}: required variable {missing} is not set")
        # SpinKube names the app's Service after it; the API Ingress routes there.
        services.add(app["metadata"]["name"])

    for name, doc in docs:
        where = f"{name} {doc['kind']}/{doc['metadata']['name']}"
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec", {})
        for c in pod.get("containers", []):
            for e in c.get("env", []):
                ref = e.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    secret_key(f"{where} env {e['name']}", ref["name"], ref["key"])
        for vol in pod.get("volumes", []):
            if "secret" in vol:
                secret_key(f"{where} volume {vol['name']}", vol["secret"]["secretName"], None)
        if doc["kind"] == "Ingress":
            for rule in spec.get("rules", []):
                for p in rule["http"]["paths"]:
                    svc = p["backend"]["service"]["name"]
                    if svc not in services:
                        problems.append(f"{where}: no Service {svc}")

    rc_secret = secrets.get("arcana-runtime-config", {}).get("stringData", {})
    if "runtime-config.toml" in rc_secret:
        rc = tomllib.loads(rc_secret["runtime-config.toml"])
        db = rc.get("sqlite_database", {}).get("default", {})
        if db.get("type") != "libsql" or not db.get("url"):
            problems.append("runtime-config.toml: the default database must be libsql with a url")

    for p in problems:
        print(f"problem: {p}")
    print(f"checked {len(docs)} documents: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
