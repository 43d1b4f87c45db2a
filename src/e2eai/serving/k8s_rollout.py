"""Rollout controller on the cluster: canary percent, promote and rollback of an
InferenceService through the official kubernetes client (``CustomObjectsApi``).

:class:`K8sRolloutController` is the :class:`~e2eai.serving.rollout.Rollout` of a KServe
deployment: the same decisions as local serving (:mod:`e2eai.serving.canary_analysis`) drive
it; here the traffic split is KServe's. Every write is a merge patch followed by a re-read, so
the returned object is what the API server holds.
"""

from __future__ import annotations

from typing import Any

from e2eai.errors import ServingError
from e2eai.serving.k8s_manifests import (
    STABLE_URI_ANNOTATION,
    STABLE_VERSION_ANNOTATION,
    VERSION_ANNOTATION,
    CanaryStyle,
)
from e2eai.serving.rollout import (
    PROMOTE_REASON,
    ROLLBACK_REASON,
    ModelSource,
    Rollout,
    RolloutStatus,
)

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class K8sRolloutController(Rollout):
    """Drive the canary of one InferenceService.

    The cluster keeps no stage history: the ``reason`` of promote and rollback is accepted
    for the interface and not stored.
    """

    def __init__(
        self, api: Any, namespace: str, name: str, style: CanaryStyle = "traffic_percent"
    ) -> None:
        self.api = api  # kubernetes.client.CustomObjectsApi
        self.namespace = namespace
        self.name = name
        self.style = style

    def get(self) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
        except ApiException as exc:
            raise ServingError(
                f"InferenceService {self.namespace}/{self.name}: {exc.status} {exc.reason}"
            ) from exc

    def apply(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the InferenceService, or merge-patch it when it exists; return it re-read."""
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.get_namespaced_custom_object(GROUP, VERSION, self.namespace, PLURAL, self.name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            # Some servers answer 200 with no body on create: always re-read.
            self.api.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, manifest
            )
        else:
            self._patch(manifest)
        return self.get()

    def _patch(self, patch: dict[str, Any]) -> dict[str, Any]:
        self.api.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, PLURAL, self.name, patch
        )
        return self.get()

    def status(self) -> RolloutStatus:
        isvc = self.get()
        endpoint = (isvc.get("status") or {}).get("url")
        annotations = isvc.get("metadata", {}).get("annotations") or {}
        predictor = isvc["spec"]["predictor"]
        stable_uri = annotations.get(STABLE_URI_ANNOTATION) or predictor["model"]["storageUri"]
        stable_version = annotations.get(STABLE_VERSION_ANNOTATION, "")
        canary_list = isvc["spec"].get("canary") or []
        if canary_list:
            entry = canary_list[0]
            return RolloutStatus(
                stable_version,
                stable_uri,
                (entry["predictor"].get("annotations") or {}).get(VERSION_ANNOTATION),
                entry["predictor"]["model"]["storageUri"],
                int(entry["trafficPercent"]),
                endpoint,
            )
        percent = predictor.get("canaryTrafficPercent")
        if percent is not None and predictor["model"]["storageUri"] != stable_uri:
            return RolloutStatus(
                stable_version,
                stable_uri,
                (predictor.get("annotations") or {}).get(VERSION_ANNOTATION),
                predictor["model"]["storageUri"],
                int(percent),
                endpoint,
            )
        return RolloutStatus(stable_version, stable_uri, None, None, 0, endpoint)

    def deploy(self, source: ModelSource, canary_percent: int) -> RolloutStatus:
        """Start ``source`` (its ``storage_uri``) as the canary with ``canary_percent`` %."""
        storage_uri, version = source.storage_uri, source.version
        if storage_uri is None:
            raise ServingError(
                f"model {source.version}: the cluster pulls models from object storage; "
                "deploy ModelSource.from_uri(storage_uri, version)"
            )
        if not 0 < canary_percent <= 100:
            raise ServingError(f"canary percent must be in 1..100, got {canary_percent}")
        current = self.status()
        if current.canary_version is not None:
            raise ServingError(f"canary {current.canary_version} is already deployed")
        isvc = self.get()
        if self.style == "traffic_percent":
            self._patch(
                {
                    "spec": {
                        "predictor": {
                            "canaryTrafficPercent": canary_percent,
                            "annotations": {VERSION_ANNOTATION: version},
                            "model": {
                                **isvc["spec"]["predictor"]["model"],
                                "storageUri": storage_uri,
                            },
                        }
                    }
                }
            )
        else:
            canary_predictor = {
                **isvc["spec"]["predictor"],
                "annotations": {VERSION_ANNOTATION: version},
                "model": {**isvc["spec"]["predictor"]["model"], "storageUri": storage_uri},
            }
            canary_predictor.pop("canaryTrafficPercent", None)
            self._patch(
                {
                    "spec": {
                        "canary": [
                            {"predictor": canary_predictor, "trafficPercent": canary_percent}
                        ]
                    }
                }
            )
        return self.status()

    def set_canary_percent(self, percent: int) -> RolloutStatus:
        current = self.status()
        if current.canary_version is None:
            raise ServingError("no canary is deployed")
        if self.style == "traffic_percent":
            self._patch({"spec": {"predictor": {"canaryTrafficPercent": percent}}})
        else:
            entry = self.get()["spec"]["canary"][0]
            self._patch({"spec": {"canary": [{**entry, "trafficPercent": percent}]}})
        return self.status()

    def promote(self, reason: str = PROMOTE_REASON) -> RolloutStatus:
        """The canary becomes the stable model with all traffic."""
        current = self.status()
        if current.canary_version is None or current.canary_storage_uri is None:
            raise ServingError("no canary is deployed: nothing to promote")
        annotations = {
            STABLE_VERSION_ANNOTATION: current.canary_version,
            STABLE_URI_ANNOTATION: current.canary_storage_uri,
        }
        if self.style == "traffic_percent":
            # Without canaryTrafficPercent the latest revision takes 100 %.
            self._patch(
                {
                    "metadata": {"annotations": annotations},
                    "spec": {"predictor": {"canaryTrafficPercent": None}},
                }
            )
        else:
            entry = self.get()["spec"]["canary"][0]
            self._patch(
                {
                    "metadata": {"annotations": annotations},
                    "spec": {"predictor": entry["predictor"], "canary": None},
                }
            )
        return self._checked(expect_canary=False)

    def rollback(self, reason: str = ROLLBACK_REASON) -> RolloutStatus:
        """All traffic back to the stable model; the canary is removed."""
        current = self.status()
        if current.canary_version is None:
            raise ServingError("no canary is deployed: nothing to roll back")
        if self.style == "traffic_percent":
            isvc = self.get()
            self._patch(
                {
                    "spec": {
                        "predictor": {
                            "canaryTrafficPercent": None,
                            "annotations": {VERSION_ANNOTATION: current.stable_version},
                            "model": {
                                **isvc["spec"]["predictor"]["model"],
                                "storageUri": current.stable_storage_uri,
                            },
                        }
                    }
                }
            )
        else:
            self._patch({"spec": {"canary": None}})
        return self._checked(expect_canary=False)

    def _checked(self, expect_canary: bool) -> RolloutStatus:
        status = self.status()
        if (status.canary_version is not None) != expect_canary:
            raise ServingError(
                f"InferenceService {self.namespace}/{self.name} did not take the change: {status}"
            )
        return status
