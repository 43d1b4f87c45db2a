"""The cluster manifests (``manifests/``): render the Kustomize overlays and validate them
offline — core kinds with kubernetes-validate, custom resources against their CRDs, the
hardening policy, checkov and yamllint — without an API server."""
