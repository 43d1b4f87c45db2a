"""Local serving: stable and canary ModelServer processes behind the weighted router.

:class:`LocalServing` is the :class:`~e2eai.serving.rollout.Rollout` of a deployment on
loopback. The state file under ``settings.home/serving/`` says what runs where (so that
``e2eai rollout …`` from another process acts on the same deployment); every change is a
locked read-modify-write of it followed by a router reload. A predictor is drained (weight 0,
then no request in flight) before it is stopped, so promote and rollback lose no request.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx

from e2eai.auth import admin_token, bearer
from e2eai.errors import E2eaiError, ServingError
from e2eai.serving.canary_analysis import (
    CanaryDecision,
    CanaryPolicy,
    decide,
    paired_from_router,
    read_decisions,
    record_decision,
    samples_from_router,
    write_paired_rows,
)
from e2eai.serving.processes import pid_alive, start_predictor, start_router, stop_process
from e2eai.serving.registry_stages import check_stage, record_stage
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
    from pathlib import Path

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

    def __init__(
        self, settings: Settings, policy: CanaryPolicy | None = None, *, actor: str = "e2eai"
    ) -> None:
        self.settings = settings
        self.policy = policy or CanaryPolicy.from_settings(settings)
        self.actor = actor
        self.state_file = state_path(settings.home)
        self.decisions_file = serving_dir(settings.home) / "canary_decisions.jsonl"
        self.audit_file = serving_dir(settings.home) / "audit.jsonl"
        self._token: str | None = None

    @property
    def token(self) -> str:
        """The admin token the router's control routes require."""
        if self._token is None:
            self._token = admin_token(self.settings)
        return self._token

    # -- audit -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _audited(self, action: str, reason: str, **detail: Any) -> Iterator[dict[str, Any]]:
        """Record ``action`` with who asked, why, and whether it was done, refused or failed.

        A ServingError (or another e2eai error) raised before anything changed is "refused";
        anything else "failed". The body may add to the record through the yielded dict.
        """
        record: dict[str, Any] = {"action": action, "actor": self.actor, "reason": reason}
        record.update(detail)
        try:
            yield record
        except E2eaiError as exc:
            self._audit({**record, "outcome": "refused", "error": str(exc)})
            raise
        except BaseException as exc:
            self._audit({**record, "outcome": "failed", "error": f"{type(exc).__name__}: {exc}"})
            raise
        self._audit({**record, "outcome": "done"})

    def _audit(self, record: dict[str, Any]) -> None:
        self.audit_file.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"at": datetime.now(UTC).isoformat(), **record}, default=str)
        with self.audit_file.open("a") as fh:
            fh.write(line + "\n")

    def audit(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The audit records of this deployment, oldest first (the last ``limit``)."""
        if not self.audit_file.is_file():
            return []
        lines = [line for line in self.audit_file.read_text().splitlines() if line.strip()]
        return [json.loads(line) for line in (lines[-limit:] if limit else lines)]

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
            response = httpx.post(
                f"{state.endpoint}{path}", json=body, headers=bearer(self.token), timeout=30
            )
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint} unreachable: {exc}") from exc
        if response.status_code != 200:
            raise ServingError(f"router {path}: {response.status_code} {response.text}")
        return response.json()

    def _router_get(self, state: ServingState, path: str) -> Any:
        try:
            response = httpx.get(f"{state.endpoint}{path}", headers=bearer(self.token), timeout=10)
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise ServingError(f"router at {state.endpoint}: {exc}") from exc
        return response.json()

    def _healthy(self, state: ServingState, slot: Slot) -> bool:
        """The router's view: is the ``slot`` backend answering its readiness check?"""
        backends = self._router_get(state, "/router/status").get("backends", [])
        return any(b.get("slot") == slot and b.get("healthy") for b in backends)

    def _require_healthy(self, state: ServingState, slot: Slot, why: str) -> None:
        """Wait up to ``serving.healthy_wait_seconds`` for ``slot`` to be healthy, else refuse.

        The model that is to take all the traffic must be serving: removing the other one
        while it is down (being restarted) would leave no healthy backend.
        """
        deadline = time.monotonic() + self.settings.serving.healthy_wait_seconds
        while not self._healthy(state, slot):
            if time.monotonic() >= deadline:
                backend = state.stable if slot == "stable" else state.canary
                version = backend.version if backend else "?"
                raise ServingError(
                    f"refusing to {why}: the {slot} model v{version} is not healthy "
                    f"(waited {self.settings.serving.healthy_wait_seconds:.0f} s); "
                    "nothing was changed"
                )
            time.sleep(0.2)

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
            enrich=bool(kw.get("enrich", False)),
        )

    # -- the deployment ----------------------------------------------------------------------

    def start(self, source: ModelSource, *, port: int | None = None, **kw: Any) -> ServingState:
        """Serve ``source`` as the stable model behind a new router; return the state."""
        with self._audited("serve", "start local serving", stable=source.version):
            return self._start(source, port=port, **kw)

    def _start(self, source: ModelSource, *, port: int | None = None, **kw: Any) -> ServingState:
        check_stage(self.settings, source.registry_version, "champion")
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
        with self._audited("stop", "stop local serving"), state_lock(self.state_file):
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

        All or nothing: a version the registry may not move to ``canary`` is refused before
        anything starts, and if the registry update fails after the canary joined the
        traffic, the canary is taken out again. ``kw`` goes to
        :func:`~e2eai.serving.processes.start_predictor` (``enrich`` …).
        """
        with self._audited(
            "deploy", f"canary at {canary_percent}%", canary=source.version
        ) as record:
            if not 0 < canary_percent <= 100:
                raise ServingError(f"--canary must be in 1..100, got {canary_percent}")
            with state_lock(self.state_file):
                state = self.state()
                if state.canary is not None:
                    raise ServingError(
                        f"canary {state.canary.version} is already deployed: promote or roll back"
                    )
                assert state.stable is not None
                record["stable"] = state.stable.version
                check_stage(self.settings, source.registry_version, "canary")
                # A canary takes the same requests as the stable it shares the traffic with.
                kw.setdefault("enrich", state.stable.enrich)
                canary = self._backend("canary", source, canary_percent, **kw)
                before = state.model_copy(deep=True)
                state.stable.weight = 100 - canary_percent
                state.canary = canary
                try:
                    self._save_and_reload(state, reset_samples=True)
                    record_stage(
                        self.settings,
                        canary.registry_version,
                        "canary",
                        f"deployed at {canary_percent}% by {self.actor}",
                    )
                except BaseException:
                    with contextlib.suppress(E2eaiError, OSError):
                        self._save_and_reload(before, reset_samples=True)
                    stop_process(canary.pid)
                    raise
            return _rollout_status(state)

    def set_canary_percent(self, percent: int) -> RolloutStatus:
        with self._audited("set_canary_percent", f"canary at {percent}%") as record:
            if not 0 <= percent <= 100:
                raise ServingError(f"canary percent must be in 0..100, got {percent}")
            with state_lock(self.state_file):
                state = self.state()
                if state.canary is None or state.stable is None:
                    raise ServingError("no canary is deployed")
                record.update(stable=state.stable.version, canary=state.canary.version)
                state.canary.weight = percent
                state.stable.weight = 100 - percent
                self._save_and_reload(state)
            return _rollout_status(state)

    def promote(self, reason: str = PROMOTE_REASON) -> RolloutStatus:
        """Canary takes all traffic; the old stable is drained and stopped.

        Refused (nothing changes) unless the canary is healthy and the registry may make it
        the champion; if the registry update fails, the traffic goes back as it was.
        """
        return self._hand_over("promote", reason, keep="canary", stage="champion")

    def rollback(self, reason: str = ROLLBACK_REASON) -> RolloutStatus:
        """Stable takes all traffic back; the canary is drained and stopped.

        Refused (nothing changes) while the stable model is not healthy: the canary would be
        the last backend standing.
        """
        return self._hand_over("rollback", reason, keep="stable", stage="rejected")

    def _hand_over(self, action: str, reason: str, *, keep: Slot, stage: str) -> RolloutStatus:
        """All traffic to the ``keep`` slot, the other drained and stopped, all or nothing.

        The registry records ``stage`` for the canary (champion when it is kept, rejected
        when it is not) before anything is stopped: if that fails, the traffic split is
        restored and the error raised.
        """
        with self._audited(action, reason) as record:
            with state_lock(self.state_file):
                state = self.state()
                if state.canary is None or state.stable is None:
                    verb = "promote" if keep == "canary" else "roll back"
                    raise ServingError(f"no canary is deployed: nothing to {verb}")
                record.update(stable=state.stable.version, canary=state.canary.version)
                canary = state.canary
                check_stage(self.settings, canary.registry_version, stage)
                self._require_healthy(state, keep, "promote" if keep == "canary" else "roll back")
                kept, gone = (
                    (state.canary, state.stable)
                    if keep == "canary"
                    else (
                        state.stable,
                        state.canary,
                    )
                )
                before = state.model_copy(deep=True)
                kept.weight, gone.weight = 100, 0
                self._save_and_reload(state)
                try:
                    self._router_post(state, "/router/drain", {"slot": gone.slot})
                    record_stage(
                        self.settings, canary.registry_version, stage, f"{reason} ({self.actor})"
                    )
                except BaseException:
                    with contextlib.suppress(E2eaiError, OSError):
                        self._save_and_reload(before)
                    raise
                state.stable = kept.model_copy(update={"slot": "stable", "weight": 100})
                state.canary = None
                self._save_and_reload(state, reset_samples=True)
                stop_process(gone.pid)
            return _rollout_status(state)

    # -- canary analysis ---------------------------------------------------------------------

    def analyze(self, apply: bool = True) -> CanaryDecision:
        """Run canary analysis on the router's samples; apply and record the decision."""
        state = self.state()
        if state.canary is None or state.stable is None:
            raise ServingError("no canary is deployed: nothing to analyse")
        samples = self._router_get(state, "/router/samples")
        stable, canary = samples_from_router(samples)
        paired = paired_from_router(samples)
        write_paired_rows(self.paired_file(state.canary.version), paired)
        decision = decide(
            stable,
            canary,
            policy=self.policy,
            stable_version=state.stable.version,
            canary_version=state.canary.version,
            canary_weight=state.canary.weight,
            paired=paired,
        )
        if apply:
            actor, self.actor = self.actor, "canary-analysis"
            try:
                decision = self.apply_decision(decision)
            finally:
                self.actor = actor
        record_decision(self.decisions_file, decision)
        return decision

    def paired_file(self, canary_version: str) -> Path:
        """Where the shadow-scored labelled rows behind canary ``canary_version``'s latest
        analysis are kept (the evidence a decision can be re-derived from)."""
        return self.decisions_file.with_name(f"canary_paired_{canary_version}.npy")

    def decisions(self, limit: int | None = None) -> list[CanaryDecision]:
        """The recorded canary decisions, oldest first (the last ``limit`` of them)."""
        return read_decisions(self.decisions_file, limit)
