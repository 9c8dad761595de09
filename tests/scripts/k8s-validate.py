#!/usr/bin/env python3
"""Validates Kubernetes manifests offline against the API schema (kubernetes-validate, strict).

    k8s-validate.py VERSION[,VERSION...] FILE...

Each YAML document is validated for each Kubernetes version. KEDA's custom resources have no
schema there: they are reported as skipped, except that a ScaledJob's jobTargetRef (a Job spec)
is validated as a batch/v1 Job. Prints one JSON object on stdout:
    {"versions": [...], "docs": {file: [doc, ...]}, "validated": [...], "skipped": [...],
     "errors": [...]}
and exits 0 when there are no errors, 1 otherwise (2 when kubernetes-validate is missing).
"""
import json
import sys

try:
    import kubernetes_validate
    import yaml
except ImportError as e:
    print(f"k8s-validate: {e} (pip install kubernetes-validate)", file=sys.stderr)
    sys.exit(2)


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    versions = [v if v != "latest" else kubernetes_validate.latest_version()
                for v in sys.argv[1].split(",")]
    out = {"versions": versions, "docs": {}, "validated": [], "skipped": [], "errors": []}
    for path in sys.argv[2:]:
        with open(path, encoding="utf-8") as f:
            try:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                out["errors"].append(f"{path}: not YAML: {e}")
                continue
        out["docs"][path] = docs
        for doc in docs:
            kind, api = doc.get("kind"), doc.get("apiVersion", "")
            name = doc.get("metadata", {}).get("name")
            label = f"{path}: {kind}/{name}"
            targets = [(label, doc)]
            if api.startswith("keda.sh/"):
                out["skipped"].append(f"{label} ({api} is a KEDA custom resource: no schema)")
                targets = []
                if kind == "ScaledJob":
                    job = {"apiVersion": "batch/v1", "kind": "Job",
                           "metadata": {"name": name},
                           "spec": doc.get("spec", {}).get("jobTargetRef", {})}
                    targets = [(f"{label} spec.jobTargetRef as a batch/v1 Job", job)]
            for what, data in targets:
                for v in versions:
                    try:
                        kubernetes_validate.validate(data, v, strict=True)
                        out["validated"].append(f"{what} @ {v}")
                    except kubernetes_validate.ValidationError as e:
                        where = ".".join(str(p) for p in e.path)
                        out["errors"].append(f"{what} @ {v}: {where}: {e.message}")
                    except (kubernetes_validate.SchemaNotFoundError,
                            kubernetes_validate.InvalidSchemaError) as e:
                        out["errors"].append(f"{what} @ {v}: no schema: {e}")
    json.dump(out, sys.stdout, indent=1, default=str)
    print()
    return 1 if out["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
