"""The Kubernetes manifests (deploy/kubernetes/) are valid Kubernetes objects: each document is
checked against the API's own schemas, strictly (an unknown or misspelt field is an error),
offline (kubernetes-validate ships the schemas). tests/kubernetes_manifests.rs checks that they
agree with the proxy configuration they carry; no Kafka is needed here."""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml

from harness import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy" / "kubernetes"

# The oldest release the manifests need (the preStop `sleep` action is on by default from
# 1.30), and the newest the package knows.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]


def documents() -> list[tuple[str, dict]]:
    found = []
    for path in sorted(DEPLOY.glob("*/*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found.append((f"{path.parent.name}/{path.name}:{doc['kind']}/"
                              f"{doc['metadata']['name']}", doc))
    return found


DOCUMENTS = documents()


def test_both_layouts_have_manifests():
    layouts = {name.split("/")[0] for name, _ in DOCUMENTS}
    assert layouts == {"gateway", "sidecar"}, layouts


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name,doc", DOCUMENTS, ids=[name for name, _ in DOCUMENTS])
def test_manifest_matches_the_kubernetes_schema(name, doc, version):
    kubernetes_validate.validate(doc, version, strict=True)


def test_a_misspelt_field_is_refused():
    """The validation above is not vacuous: one wrong field name fails it."""
    deployment = next(doc for name, doc in DOCUMENTS if name.startswith("gateway/deployment.yaml"))
    broken = copy.deepcopy(deployment)
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(broken, VERSIONS[-1], strict=True)
