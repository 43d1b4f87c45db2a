"""Bounded schemathesis fuzzing of the app's backend API, from its own ``/openapi.json``.

A real deployment (``start_app_deployment``: a registry champion served with Feast enrichment
behind the router, ``e2eai app`` in its own process, SQLite) gets positive and negative cases
of every documented operation, once without a token and once with the admin token. The
contract, checked by schemathesis on every answer: no status >= 500, the status is one the
operation documents, and the body matches the documented schema for that status. The rollout
mutations (``POST /api/rollout/*``) change what serves, so the token-carrying run of them
comes last, where a 409 (a refused deploy, nothing to promote or roll back) is a fine answer.
Afterwards a real flight still predicts as before and ``/readyz`` is 200.

The module prints requests and status codes per operation (``pytest -s``). Generation is
derandomised, so a run sends the same requests every time.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from app_fixtures import AppDeployment, start_app_deployment
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

#: Per operation and generation mode; hypothesis stops earlier when an operation has fewer.
EXAMPLES = 25
ROLLOUT_MUTATION = "/api/rollout/"  # POST /api/rollout/{canary,promote,rollback}


# -- the ledger of every request --------------------------------------------------------------


@dataclass
class Outcome:
    """One generated request and what came back."""

    operation: str
    auth: str  # "token" or "none"
    mode: str  # "positive", "negative" or "known id"
    status: int | str  # an HTTP status, or why nothing was sent / answered
    problem: str | None  # None when the answer keeps the contract
    replay: str = ""  # a curl command and the answer, for a broken contract


@dataclass
class FuzzLedger:
    """Every request sent by this module, for failure messages and the closing table."""

    outcomes: list[Outcome] = field(default_factory=list, repr=False)

    def table(self) -> str:
        groups: dict[tuple[str, str], list[Outcome]] = {}
        for o in self.outcomes:
            groups.setdefault((o.operation, o.auth), []).append(o)
        width = max([len(operation) for operation, _ in groups] + [9])
        lines = [f"{'operation':<{width}}  {'auth':<5}  {'sent':>4}  {'bad':>3}  statuses"]
        for (operation, auth), items in groups.items():
            statuses = Counter(str(o.status) for o in items)
            codes = " ".join(f"{code}x{n}" for code, n in sorted(statuses.items()))
            bad = sum(o.problem is not None for o in items)
            lines.append(f"{operation:<{width}}  {auth:<5}  {len(items):>4}  {bad:>3}  {codes}")
        bad = sum(o.problem is not None for o in self.outcomes)
        lines.append(f"{'total':<{width}}  {'':<5}  {len(self.outcomes):>4}  {bad:>3}")
        return "\n".join(lines)


def assert_kept_contract(outcomes: list[Outcome], what: str) -> None:
    """Fail naming every operation whose answer broke the contract, with a curl to replay it."""
    bad = [o for o in outcomes if o.problem is not None]
    if bad:
        lines = [
            f"{o.operation} [{o.auth}, {o.mode}] -> {o.status}: {o.problem}\n    {o.replay}"
            for o in bad
        ]
        pytest.fail(
            f"{len(bad)} of {len(outcomes)} requests of {what} broke the contract:\n"
            + "\n".join(lines),
            pytrace=False,
        )


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ledger() -> Iterator[FuzzLedger]:
    book = FuzzLedger()
    yield book
    if book.outcomes:
        print("\nrequests sent per operation, status codes (bad = broke the contract)")
        print(book.table())


@pytest.fixture(scope="module")
def deployment(
    flight_window_run, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[AppDeployment]:
    deployment = start_app_deployment(flight_window_run, tmp_path_factory.mktemp("app-fuzz"))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def client(deployment: AppDeployment) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployment.url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def baseline(client: httpx.Client, deployment: AppDeployment) -> dict[str, Any]:
    """The stable champion's answer to a real flight, before any fuzzing."""
    response = client.post("/api/predictions", json={"request": deployment.requests[0]})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    return prediction


@pytest.fixture(scope="module")
def operations(deployment: AppDeployment) -> list[Any]:
    import schemathesis

    api = schemathesis.openapi.from_url(f"{deployment.url}/openapi.json")
    found = [result.ok() for result in api.get_all_operations()]
    assert {op.label for op in found} >= {"POST /api/predictions", "POST /api/rollout/canary"}
    return found


def _is_rollout_mutation(operation: Any) -> bool:
    return operation.method.upper() == "POST" and operation.path.startswith(ROLLOUT_MUTATION)


# -- generating and sending cases --------------------------------------------------------------


def _generated(strategy: Any) -> list[Any]:
    cases: list[Any] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(case: Any) -> None:
        cases.append(case)

    with contextlib.suppress(Unsatisfiable):  # no negative case of an operation without input
        collect()
    return cases


def fuzz(
    operations: list[Any],
    deployment: AppDeployment,
    ledger: FuzzLedger,
    *,
    token: bool,
    known_id: str,
) -> list[Outcome]:
    """Positive and negative cases of each of ``operations``, with or without the token;
    the operations on one prediction also get positive cases for a stored one (``known_id``),
    since a random id only ever reaches the 404."""
    import requests
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
    ]
    headers = deployment.admin if token else None
    auth = "token" if token else "none"
    outcomes = []
    with requests.Session() as session:
        for operation in operations:
            modes = [
                ("positive", GenerationMode.POSITIVE, None),
                ("negative", GenerationMode.NEGATIVE, None),
            ]
            if "{prediction_id}" in operation.path:
                modes.append(("known id", GenerationMode.POSITIVE, {"prediction_id": known_id}))
            for mode, generation_mode, path_parameters in modes:
                strategy = operation.as_strategy(
                    generation_mode=generation_mode, path_parameters=path_parameters
                )
                for case in _generated(strategy):
                    status, problem, replay = _send(case, session, deployment.url, headers, checks)
                    outcome = Outcome(case.operation.label, auth, mode, status, problem, replay)
                    outcomes.append(outcome)
                    ledger.outcomes.append(outcome)
    return outcomes


def _send(
    case: Any, session: Any, base_url: str, headers: dict[str, str] | None, checks: list[Any]
) -> tuple[int | str, str | None, str]:
    """Send ``case``; its status, what broke the contract (None: nothing), how to replay it."""
    import requests
    from schemathesis.core.failures import FailureGroup

    try:
        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
    except (requests.ConnectionError, requests.Timeout) as exc:
        return "no answer", f"no answer: {type(exc).__name__}", ""
    except Exception as exc:  # requests refused to send it (a header it cannot encode)
        return "not sent", None, repr(exc)[:200]
    try:
        case.validate_response(response, checks=checks, headers=headers)
    except FailureGroup as group:
        # Title and first line of each failure: the value at fault is in the replay.
        problem = "; ".join(
            f"{f.title}: {f.message.splitlines()[0] if f.message else ''}" for f in group.exceptions
        )
        replay = f"{case.as_curl_command(headers=headers)}  -> {response.text[:300]}"
        return response.status_code, problem, replay
    return response.status_code, None, ""


# -- the tests -------------------------------------------------------------------------------


def test_without_a_token_every_operation_keeps_its_schema(deployment, operations, baseline, ledger):
    """No token: admin operations answer 401, the rest their documented answers."""
    outcomes = fuzz(operations, deployment, ledger, token=False, known_id=baseline["id"])
    assert len(outcomes) > 200
    assert_kept_contract(outcomes, "the fuzzing without a token")


def test_with_the_admin_token_every_operation_keeps_its_schema(
    deployment, operations, baseline, ledger
):
    """The admin token, everything but the rollout mutations (they come last)."""
    steady = [op for op in operations if not _is_rollout_mutation(op)]
    outcomes = fuzz(steady, deployment, ledger, token=True, known_id=baseline["id"])
    assert len(outcomes) > 200
    assert_kept_contract(outcomes, "the fuzzing with the admin token")


def test_rollout_mutations_with_the_token_keep_their_schema(
    deployment, operations, baseline, ledger, client
):
    """Last, since they change what serves: deploy/promote/rollback with the token. A refused
    action (a version already deployed, nothing to promote or roll back) is a documented 409."""
    mutations = [op for op in operations if _is_rollout_mutation(op)]
    assert len(mutations) == 3
    try:
        outcomes = fuzz(mutations, deployment, ledger, token=True, known_id=baseline["id"])
    finally:
        # A canary the fuzzing got deployed leaves the traffic again.
        client.post(
            "/api/rollout/rollback", json={"reason": "fuzzing over"}, headers=deployment.admin
        )
    assert_kept_contract(outcomes, "the rollout mutations with the admin token")


def test_after_fuzzing_a_real_flight_still_predicts(client, deployment, baseline, ledger):
    """The same answer as before the fuzzing (unless a promoted canary serves now), and the
    app still reaches its database and the model."""
    assert ledger.outcomes, "run the fuzzing tests first"
    response = client.post("/api/predictions", json={"request": deployment.requests[0]})
    assert response.status_code == 200, response.text
    (prediction,) = response.json()["predictions"]
    if prediction["model_version"] == baseline["model_version"]:
        assert prediction["probability"] == pytest.approx(baseline["probability"])
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"database": True, "serving": True}
