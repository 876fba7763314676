#!/bin/sh
# Installs the offline Kubernetes schema validator the Kubernetes target's tests use (test/k8s/):
# kubernetes-validate bundles the Kubernetes OpenAPI schemas per version, so `-k 1.28.0 --strict` checks every
# object against the 1.28 schema and rejects unknown fields, without a cluster or network access at test time.
# Under CI=true the tests fail when it is missing; locally they skip that check with a warning.
# @see https://pypi.org/project/kubernetes-validate/
set -eu
VERSION=1.37.0
if command -v kubernetes-validate >/dev/null 2>&1 && kubernetes-validate --version 2>/dev/null | grep -q "$VERSION"; then
  echo "kubernetes-validate $VERSION already installed"
  exit 0
fi
python3 -m pip install --quiet --disable-pip-version-check "kubernetes-validate==$VERSION"
kubernetes-validate --version
