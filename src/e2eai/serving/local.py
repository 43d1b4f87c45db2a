"""Local serving: stable and canary ModelServer processes behind the weighted router.

:class:`LocalServing` is the :class:`~e2eai.serving.rollout.Rollout` of a deployment on
loopback. The state file under ``settings.home/serving/`` says what runs where (so that
``e2eai rollout …`` from another process acts on the same deployment); every change is a
locked read-modify-write of it followed by a router reload. A predictor is drained (weight 0,
then no request in flight) before it is stopped, so promote and rollback lose no request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from e2eai.errors import ServingError
from e2eai.serving.canary_analysis import (
    CanaryDecision,
    CanaryPolicy,
    decide,
    read_decisions,
    record_decision,
    samples_from_router,
)
from e2eai.serving.processes import pid_alive, start_predictor, start_router, stop_process
from e2eai.serving.registry_stages import record_stage
from e2eai.serving.rollout import (
    PROMOTE_REASON,
    ROLLBACK_REASON,
    ModelSource,
    Rollout,
    RolloutStatus,
)
from e2eai.serving.state import (
    Backend,
    ServingState,
    Slot,
    clear_state,
    read_state,
    serving_dir,
    state_lock,
    state_path,
    write_state,
)

if TYPE_CHECKING:
    from e2eai.config import Settings


def _rollout_status(state: ServingState) -> RolloutStatus:
    if state.stable is None:
        raise ServingError(f"the deployment at {state.endpoint} has no stable model")
    canary = state.canary
    return RolloutStatus(
        stable_version=state.stable.version,
        stable_storage_uri=state.stable.model_path,
        canary_version=None if canary is None else canary.version,
        canary_storage_uri=None if canary is None else canary.model_path,
        canary_percent=0 if canary is None else canary.weight,
        endpoint=state.endpoint,
    )


class LocalServing(Rollout):
    """Start, shift, promote, roll back and stop the local deployment described by the state."""

    def __init__(self, settings: Settings, policy: CanaryPolicy | None = None) -> None:
        self.settings = settings
        self.policy = policy or CanaryPolicy.from_settings(settings)
        self.state_file = state_path(settings.home)
        self.decisions_file = serving_dir(settings.home) / "canary_decisions.jsonl"

    # -- state -------------------------------------------------------------------------------

    def state(self) -> ServingState:
        """The running deployment's state; ServingError when nothing is served."""
        state = read_state(self.state_file)
        if state is None or not pid_alive(state.router_pid):
            raise ServingError(
                f"nothing is served from {self.settings.home} (start it with `e2eai serve`)"
            )
        return state

    def _save_and_reload(self, state: ServingState, reset_samples: bool = False) -> None:
        write_state(self.state_file, state)
        self._router_post(state, "/router/reload", {"reset_samples": reset_samples})

    def _router_post(self, state: ServingState, path: str, body: dict[str, Any]) -> Any:
        try:
            response = httpx.post(f"{state.endpoint}{path}", json=body, timeout=30)
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ServingError(f"router {path}: {response.status_code} {response.text}")
        return response.json()

    def _router_get(self, state: ServingState, path: str) -> Any:
        try:
            response = httpx.get(f"{state.endpoint}{path}", timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint}: {exc}") from exc
        return response.json()

    def _backend(self, slot: Slot, source: ModelSource, weight: int, **kw: Any) -> Backend:
        process = start_predictor(self.settings, source, slot=slot, **kw)
        return Backend(
            slot=slot,
            version=source.version,
            model_path=process.model_path,
            registry_version=source.registry_version,
            http_port=process.http_port,
            grpc_port=process.grpc_port,
            pid=process.pid,
            weight=weight,
        )

    # -- the deployment ----------------------------------------------------------------------

    def start(self, source: ModelSource, *, port: int | None = None, **kw: Any) -> ServingState:
        """Serve ``source`` as the stable model behind a new router; return the state."""
        with state_lock(self.state_file):
            existing = read_state(self.state_file)
            if existing is not None and pid_alive(existing.router_pid):
                raise ServingError(f"already serving at {existing.endpoint}; stop it first")
            stable = self._backend("stable", source, 100, **kw)
            host = self.settings.serving.host
            router_port = port if port is not None else self.settings.serving.port
            state = ServingState(
                model_name=self.settings.serving.model_name,
                host=host,
                router_port=router_port,
                router_pid=0,
                stable=stable,
            )
            write_state(self.state_file, state)
            try:
                state.router_pid = start_router(self.settings, self.state_file, host, router_port)
            except BaseException:
                stop_process(stable.pid, grace=2)
                clear_state(self.state_file)
                raise
            write_state(self.state_file, state)
        record_stage(self.settings, stable.registry_version, "champion", "serving as stable")
        return state

    def stop(self) -> None:
        """Stop the router and every predictor; forget the state."""
        with state_lock(self.state_file):
            state = read_state(self.state_file)
            if state is None:
                return
            stop_process(state.router_pid, grace=5)
            for backend in state.backends():
                stop_process(backend.pid)
            clear_state(self.state_file)

    def describe(self) -> dict[str, Any]:
        """Endpoint, backends with the router's view of their health, latest decisions."""
        state = self.state()
        router = self._router_get(state, "/router/status")
        return {
            "endpoint": state.endpoint,
            "model_name": state.model_name,
            "stable": state.stable.model_dump(mode="json") if state.stable else None,
            "canary": state.canary.model_dump(mode="json") if state.canary else None,
            "router": router,
            "decisions": [
                d.model_dump(mode="json") for d in read_decisions(self.decisions_file, limit=10)
            ],
        }

    def feedback(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Send ground-truth labels for served request ids to the router."""
        return self._router_post(self.state(), "/router/feedback", {"feedback": items})

    # -- the rollout -------------------------------------------------------------------------

    def status(self) -> RolloutStatus:
        return _rollout_status(self.state())

    def deploy(self, source: ModelSource, canary_percent: int, **kw: Any) -> RolloutStatus:
        """Start ``source`` as the canary and send it ``canary_percent`` % of the traffic.

        ``kw`` goes to :func:`~e2eai.serving.processes.start_predictor` (``enrich`` …).
        """
        if not 0 < canary_percent <= 100:
            raise ServingError(f"--canary must be in 1..100, got {canary_percent}")
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is not None:
                raise ServingError(
                    f"canary {state.canary.version} is already deployed: promote or roll back"
                )
            canary = self._backend("canary", source, canary_percent, **kw)
            assert state.stable is not None
            state.stable.weight = 100 - canary_percent
            state.canary = canary
            self._save_and_reload(state, reset_samples=True)
        record_stage(
            self.settings, canary.registry_version, "canary", f"deployed at {canary_percent}%"
        )
        return _rollout_status(state)

    def set_canary_percent(self, percent: int) -> RolloutStatus:
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed")
            state.canary.weight = percent
            state.stable.weight = 100 - percent
            self._save_and_reload(state)
        return _rollout_status(state)

    def promote(self, reason: str = PROMOTE_REASON) -> RolloutStatus:
        """Canary takes all traffic; the old stable is drained and stopped."""
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed: nothing to promote")
            old = state.stable
            state.canary.weight, old.weight = 100, 0
            self._save_and_reload(state)
            self._router_post(state, "/router/drain", {"slot": "stable"})
            new_stable = state.canary.model_copy(update={"slot": "stable", "weight": 100})
            state.stable, state.canary = new_stable, None
            self._save_and_reload(state, reset_samples=True)
            stop_process(old.pid)
        record_stage(self.settings, new_stable.registry_version, "champion", reason)
        return _rollout_status(state)

    def rollback(self, reason: str = ROLLBACK_REASON) -> RolloutStatus:
        """Stable takes all traffic back; the canary is drained and stopped."""
        with state_lock(self.state_file):
            state = self.state()
            if state.canary is None or state.stable is None:
                raise ServingError("no canary is deployed: nothing to roll back")
            canary = state.canary
            state.stable.weight, canary.weight = 100, 0
            self._save_and_reload(state)
            self._router_post(state, "/router/drain", {"slot": "canary"})
            state.canary = None
            self._save_and_reload(state, reset_samples=True)
            stop_process(canary.pid)
        record_stage(self.settings, canary.registry_version, "rejected", reason)
        return _rollout_status(state)

    # -- canary analysis ---------------------------------------------------------------------

    def analyze(self, apply: bool = True) -> CanaryDecision:
        """Run canary analysis on the router's samples; apply and record the decision."""
        state = self.state()
        if state.canary is None or state.stable is None:
            raise ServingError("no canary is deployed: nothing to analyse")
        stable, canary = samples_from_router(self._router_get(state, "/router/samples"))
        decision = decide(
            stable,
            canary,
            policy=self.policy,
            stable_version=state.stable.version,
            canary_version=state.canary.version,
            canary_weight=state.canary.weight,
        )
        if apply:
            decision = self.apply_decision(decision)
        record_decision(self.decisions_file, decision)
        return decision

    def decisions(self, limit: int | None = None) -> list[CanaryDecision]:
        """The recorded canary decisions, oldest first (the last ``limit`` of them)."""
        return read_decisions(self.decisions_file, limit)
