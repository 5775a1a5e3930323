#!/usr/bin/env python3
"""Checks the deployment files: `databricks.yml` against the Databricks bundle JSON Schema, and `app.yaml` and
its agreement with the bundle (command as an array, env entries well formed, every `valueFrom` naming a resource
the bundle declares for the app). The Rust test `deploy.rs` checks that the server reads every variable.

Usage: scripts/check-deploy.py   (needs PyYAML and jsonschema; scripts/test.sh provides them)
"""

import json
import re
import sys
from pathlib import Path

import jsonschema
import regex
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "scripts" / "data" / "databricks-bundle-schema.json"


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


def load_yaml(name: str):
    path = ROOT / name
    try:
        return yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as error:
        fail(f"{name}: {error}")


def check_bundle(bundle) -> dict:
    schema = json.loads(SCHEMA.read_text())

    # The schema's patterns use Unicode classes (\p{L}) that Python's `re` lacks; `regex` has them.
    def pattern(validator, expected, instance, _schema):
        if isinstance(instance, str) and not regex.search(expected, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {expected!r}")

    validator_class = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    validator = validator_class(schema)
    errors = sorted(validator.iter_errors(bundle), key=lambda e: list(e.absolute_path))
    if errors:
        for error in errors[:20]:
            # A `oneOf` failure (value or ${var} reference) says little; its most relevant sub-error says what.
            error = jsonschema.exceptions.best_match([error])
            path = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            print(f"databricks.yml: {path}: {error.message[:300]}", file=sys.stderr)
        fail(f"databricks.yml does not match the bundle schema ({len(errors)} errors)")
    apps = bundle.get("resources", {}).get("apps", {})
    if len(apps) != 1:
        fail("databricks.yml must declare exactly one app")
    (key, app), = apps.items()
    for target in ("dev", "prod"):
        if target not in bundle.get("targets", {}):
            fail(f"databricks.yml has no `{target}` target")
    source = ROOT / app.get("source_code_path", ".")
    if app.get("source_code_path") != "./dist-app":
        fail("the app's source_code_path must be ./dist-app, the directory scripts/package-app.sh fills")
    kinds = {r["name"]: next(k for k in r if k not in ("name", "description")) for r in app.get("resources", [])}
    if kinds.get("serving-endpoint") != "serving_endpoint":
        fail("the app needs a `serving-endpoint` resource of kind serving_endpoint")
    endpoint = next(r for r in app["resources"] if r["name"] == "serving-endpoint")["serving_endpoint"]
    if endpoint.get("permission") != "CAN_QUERY":
        fail("the serving endpoint resource must grant CAN_QUERY")
    if not ({"postgres", "database"} & set(kinds.values())):
        fail("the app needs a Lakebase resource (postgres or database)")
    print(f"databricks.yml: valid; app `{key}` with resources {sorted(kinds)}; packaged from {source.name}/")
    return kinds


def check_app_yaml(app_yaml, resource_keys: dict) -> None:
    command = app_yaml.get("command")
    if not (isinstance(command, list) and command and all(isinstance(c, str) for c in command)):
        fail("app.yaml: `command` must be a non-empty array of strings (Databricks Apps does not run a shell)")
    if any("$" in c and "DATABRICKS_APP_PORT" not in c for c in command):
        fail("app.yaml: `command` may expand only $DATABRICKS_APP_PORT")
    names = set()
    for entry in app_yaml.get("env", []):
        name = entry.get("name", "")
        if not re.fullmatch(r"[A-Z][A-Z0-9_]*", name):
            fail(f"app.yaml: bad variable name {name!r}")
        if name in names:
            fail(f"app.yaml: {name} is set twice")
        names.add(name)
        has_value, has_from = "value" in entry, "valueFrom" in entry
        if has_value == has_from:
            fail(f"app.yaml: {name} needs exactly one of `value` and `valueFrom`")
        if has_value and not isinstance(entry["value"], str):
            fail(f"app.yaml: the value of {name} must be a quoted string")
        if has_from and entry["valueFrom"] not in resource_keys:
            fail(f"app.yaml: {name} reads resource `{entry['valueFrom']}`, which databricks.yml does not declare")
    extra = set(app_yaml) - {"command", "env"}
    if extra:
        fail(f"app.yaml: unknown keys {sorted(extra)}")
    if (ROOT / "app.yml").exists():
        fail("app.yml would shadow app.yaml; keep exactly one")
    print(f"app.yaml: valid; sets {sorted(names)}")


def main() -> None:
    kinds = check_bundle(load_yaml("databricks.yml"))
    check_app_yaml(load_yaml("app.yaml"), kinds)


if __name__ == "__main__":
    main()
