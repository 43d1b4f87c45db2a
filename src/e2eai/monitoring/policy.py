"""The retraining policy: whether a monitoring window calls for retraining the champion.

Five rules read a window's summary (:func:`e2eai.monitoring.monitor.monitor_window`), in
order; the first that fires is the reason:

1. ``risk`` — a harmful shift (Podkopaev & Ramdas 2022, :mod:`e2eai.monitoring.risk`): the
   lower confidence sequence on the champion's running risk (mean Brier score, by default)
   over every labelled row it answered since it was deployed exceeds the upper bound on its
   holdout risk by ``risk_tolerance``. It needs no ``min_labelled``: the bound is valid at
   every sample size, and read after every window its chance of *ever* firing without a
   harmful shift stays at most ``risk_alpha``. It comes first because it is the one rule
   whose false alarms do not add up over the windows, and because a shift that leaves the
   loss where it was (however far it moves the inputs) never fires it.
2. ``performance`` — at least ``min_labelled`` labelled rows and the upper end of the
   window's 95 % ROC-AUC interval (Hanley–McNeil) below the champion's holdout ROC-AUC
   minus ``auc_drop``: the AUC is lower by δ even where the interval is kindest to it. The
   ranking can fall where the Brier score (which also weighs calibration) holds, so this
   stays, one window at a time.
3. ``label_shift`` — at least ``min_labelled`` labelled rows, and their positive rate
   differs from the reference's (the rows the champion learnt on) both significantly (a
   two-proportion z-test at ``label_shift_alpha``; an exact binomial test against the
   reference's rate when its row count is unknown) and by ``min_rate_change`` or more.
4. ``drift`` — the importance-weighted share of drifted inputs (:mod:`e2eai.monitoring.drift`)
   reaches ``drift_share``: inputs the model hardly uses do not count for much. By default
   (``drift_without_labels_only``) only for a window with fewer than ``min_labelled``
   labels: where the labels can judge performance, they do, and a harmless shift (the
   seasons) does not retrain.
5. ``age`` — the champion's training data ended ``max_age_days`` or more ago.

A multi-class task (images, text) is judged the same way on its own figures: the risk is
the 0/1 misclassification of the predicted class (tolerance ``accuracy_drop``); performance
compares the upper end of the window's 95 % Wilson interval on accuracy with the holdout
accuracy minus ``accuracy_drop``; label shift is a chi-square test of homogeneity of the
window's class counts against the reference's, with the largest change of a class's share
held to ``min_rate_change``; drift is the share of image or text statistics that moved.

Risk, performance and drift speak for the champion only when the figures are its own (the
risk tracked for its version; the window answered by it, its ``reference_version``). A
rule that fires is blocked while a retrain is in progress (never two at once) or within
``cooldown_days`` of the last one; the decision is still recorded. Every decision, retrain
or not, carries every figure each rule read, and :func:`record_decision` writes it to the
app database's audit log.

Under no change, each rule's false-trigger rate is bounded: the risk rule's by
``risk_alpha`` over all windows together (``tests/test_monitoring_risk.py`` measures it on
real flights), the AUC's upper bound falls below the holdout figure itself with chance
2.5 % per window (below it minus δ, far less), the label test rejects with chance
``label_shift_alpha``, and any input is flagged with chance at most the drift check's alpha
(Holm). On 20 random i.i.d. splits of ten real January days, scored by a real model, the
policy fired in none (``tests/test_monitoring_policy.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from e2eai.app.store import AppStore
    from e2eai.config import RetrainingSettings
    from e2eai.monitoring.reference import Reference
    from e2eai.tasks import Task

Reason = Literal["risk", "performance", "label_shift", "drift", "age"]
Blocked = Literal["cooldown", "in_progress"]
Outcome = Literal["retrain", "hold", "blocked"]
RULES: tuple[Reason, ...] = ("risk", "performance", "label_shift", "drift", "age")
AUDIT_ACTION = "retrain-decision"
DAY = timedelta(days=1)


@dataclass(frozen=True)
class ChampionState:
    """What the policy knows of the serving champion.

    ``reference_positive_rate`` is the share of positives in the version's reference rows
    (a sample of its training rows), ``reference_rows`` their number (None: unknown, the
    rate is then taken as exact); ``trained_until`` is the end of its training window.
    """

    version: int
    holdout_roc_auc: float | None
    reference_positive_rate: float
    trained_until: datetime
    reference_rows: int | None = None
    holdout_accuracy: float | None = None  # multi-class tasks: what performance compares with
    reference_class_counts: tuple[int, ...] | None = None  # … and label shift

    @classmethod
    def from_reference(
        cls,
        reference: Reference,
        task: Task,
        holdout_roc_auc: float | None,
        trained_until: datetime,
    ) -> ChampionState:
        """The state of ``reference``'s version, its positive rate read from its rows."""
        labels = reference.frame[task.label]
        return cls(
            version=reference.version,
            holdout_roc_auc=holdout_roc_auc,
            reference_positive_rate=float(labels.mean()),
            trained_until=trained_until,
            reference_rows=int(labels.notna().sum()),
        )


class RetrainDecision(BaseModel):
    """One verdict of the policy on one window, with the evidence of every rule."""

    model_config = ConfigDict(frozen=True)

    retrain: bool
    reason: Reason | None  # the first rule that fired, blocked or not
    blocked: Blocked | None
    at: datetime
    window: str | None
    champion_version: int
    training_window: tuple[datetime, datetime] | None  # what to train on, when retraining
    evidence: dict[str, Any]
    message: str

    @property
    def outcome(self) -> Outcome:
        if self.retrain:
            return "retrain"
        return "blocked" if self.blocked else "hold"

    def summary(self) -> dict[str, Any]:
        """JSON-ready: the verdict, its reason, and every rule's figures."""
        return {"outcome": self.outcome, **self.model_dump(mode="json")}


def decide(
    window: dict[str, Any],
    champion: ChampionState,
    now: datetime,
    last_retrain_at: datetime | None,
    in_progress: bool,
    settings: RetrainingSettings,
) -> RetrainDecision:
    """Whether ``window`` (a monitoring summary) calls for retraining ``champion``.

    ``now`` is the instant of the decision in event time (a window's end when traffic is
    replayed); ``last_retrain_at`` when the last retrain was triggered (None: never);
    ``in_progress`` whether one is running. Pure: reads nothing but its arguments.
    Raises ValueError when a time is not timezone-aware.
    """
    for name, value in (("now", now), ("trained_until", champion.trained_until)):
        _require_aware(name, value)
    if last_retrain_at is not None:
        _require_aware("last_retrain_at", last_retrain_at)
    answered = window.get("reference_version")
    champions = answered is None or answered == champion.version
    rules = {
        "risk": _risk(window, champion, settings),
        "performance": _performance(window, champion, champions, settings),
        "label_shift": _label_shift(window, champion, settings),
        "drift": _drift(window, champions, settings),
        "age": _age(champion, now, settings),
    }
    reason = next((r for r in RULES if rules[r]["fired"]), None)
    guard = _guard(now, last_retrain_at, in_progress, settings)
    blocked: Blocked | None = None
    if reason is not None and in_progress:
        blocked = "in_progress"
    elif reason is not None and guard["cooldown_remaining_days"] > 0:
        blocked = "cooldown"
    retrain = reason is not None and blocked is None
    training = (now - settings.training_days * DAY, now) if retrain else None
    evidence = {**rules, "guard": guard, "answered_by": answered}
    return RetrainDecision(
        retrain=retrain,
        reason=reason,
        blocked=blocked,
        at=now,
        window=window.get("window"),
        champion_version=champion.version,
        training_window=training,
        evidence=evidence,
        message=_message(reason, blocked, rules, guard, champion, training),
    )


def record_decision(store: AppStore, decision: RetrainDecision, actor: str = "monitor") -> None:
    """Write ``decision`` (retrain, hold or blocked) with its evidence to the audit log."""
    store.add_audit(
        actor=actor,
        action=AUDIT_ACTION,
        outcome=decision.outcome,
        reason=decision.message,
        detail=decision.summary(),
    )


# -- the rules ---------------------------------------------------------------------------------


def _labelled(window: dict[str, Any]) -> int:
    quality = window.get("quality")
    return int(quality["rows"]) if quality else int(window.get("labelled") or 0)


def _risk(window: dict[str, Any], champion: ChampionState, s: RetrainingSettings) -> dict[str, Any]:
    risk = window.get("risk") or {}
    lower, upper = risk.get("lower"), risk.get("source_upper")
    # The tracker's own tolerance (a multi-class task's is accuracy_drop), else the setting.
    tolerance = risk.get("eps_tol", s.risk_tolerance)
    figures = {
        "fired": False,
        "loss": risk.get("loss"),
        "labelled": risk.get("n", 0),
        "mean": risk.get("mean"),
        "lower": lower,
        "source_rows": risk.get("source_n"),
        "source_mean": risk.get("source_mean"),
        "source_upper": upper,
        "tolerance": tolerance,
        "threshold": None if upper is None else upper + tolerance,
        "alpha": s.risk_alpha,
        "alpha_source": risk.get("alpha_source"),
        "alpha_target": risk.get("alpha_target"),
        "first_alarm_row": risk.get("first_alarm_row"),
        "first_alarm_at": risk.get("first_alarm_at"),
        "first_alarm_window": risk.get("first_alarm_window"),
        "version": risk.get("version"),
        "note": "",
    }
    if not risk:
        return {**figures, "note": "no risk tracked on the window (no labelled rows yet)"}
    if risk.get("version") != champion.version:
        return {**figures, "note": f"the risk tracked is version {risk.get('version')}'s"}
    if lower is None or upper is None:
        return {**figures, "note": risk.get("note") or "no source bound on the risk"}
    if not figures["labelled"]:
        return {**figures, "note": "no labelled rows of the champion yet"}
    return {**figures, "fired": lower > upper + tolerance}


def _performance(
    window: dict[str, Any], champion: ChampionState, champions: bool, s: RetrainingSettings
) -> dict[str, Any]:
    """The window's quality figure (ROC-AUC; a multi-class window's accuracy) at the upper
    end of its 95 % interval against the champion's holdout figure minus its drop."""
    quality = window.get("quality") or {}
    if "accuracy" in quality:
        metric, title, holdout = "accuracy", "accuracy", champion.holdout_accuracy
        drop_name, drop = "accuracy_drop", s.accuracy_drop
    else:
        metric, title, holdout = "roc_auc", "ROC-AUC", champion.holdout_roc_auc
        drop_name, drop = "auc_drop", s.auc_drop
    labelled = _labelled(window)
    high = quality.get(f"{metric}_high")
    floor = None if holdout is None else holdout - drop
    note = ""
    if labelled < s.min_labelled:
        note = f"{labelled} labelled rows, fewer than {s.min_labelled}"
    elif high is None:
        note = f"no {title} on the window (one class only, or no quality figures)"
    elif floor is None:
        note = f"the champion has no holdout {title}"
    elif not champions:
        note = f"the window was answered by version {window.get('reference_version')}"
    return {
        "fired": not note and floor is not None and high is not None and high < floor,
        "labelled": labelled,
        "min_labelled": s.min_labelled,
        metric: quality.get(metric),
        f"{metric}_low": quality.get(f"{metric}_low"),
        f"{metric}_high": high,
        f"holdout_{metric}": holdout,
        drop_name: drop,
        "floor": floor,
        "note": note,
    }


def _class_shift(
    window: dict[str, Any], champion: ChampionState, s: RetrainingSettings
) -> dict[str, Any]:
    """The label-shift rule of a multi-class window: its class mix against the reference's."""
    from scipy.stats import chi2_contingency

    quality = window["quality"]
    labelled = _labelled(window)
    shares: dict[str, float] = quality["label_share"]
    reference = champion.reference_class_counts
    figures: dict[str, Any] = {
        "fired": False,
        "labelled": labelled,
        "min_labelled": s.min_labelled,
        "class_share": shares,
        "reference_class_share": None,
        "largest_share_change": None,
        "min_rate_change": s.min_rate_change,
        "test": "chi-square homogeneity",
        "p_value": None,
        "alpha": s.label_shift_alpha,
        "note": "",
    }
    if reference is None or len(reference) != len(shares) or not sum(reference):
        return {**figures, "note": "the champion's reference class counts are unknown"}
    counts = [round(v * labelled) for v in shares.values()]
    total = sum(reference)
    reference_share = [c / total for c in reference]
    change = max(abs(a - b) for a, b in zip(shares.values(), reference_share, strict=True))
    seen = [k for k in range(len(counts)) if counts[k] + reference[k] > 0]
    p_value = 1.0
    if len(seen) > 1:
        table = [[counts[k] for k in seen], [reference[k] for k in seen]]
        p_value = float(chi2_contingency(table).pvalue)
    figures.update(
        reference_class_share=dict(zip(shares, reference_share, strict=True)),
        largest_share_change=change,
        p_value=p_value,
    )
    if labelled < s.min_labelled:
        return {**figures, "note": f"{labelled} labelled rows, fewer than {s.min_labelled}"}
    return {**figures, "fired": p_value < s.label_shift_alpha and change >= s.min_rate_change}


def _label_shift(
    window: dict[str, Any], champion: ChampionState, s: RetrainingSettings
) -> dict[str, Any]:
    quality = window.get("quality") or {}
    if "label_share" in quality:
        return _class_shift(window, champion, s)
    labelled = _labelled(window)
    rate, reference = quality.get("positive_rate"), champion.reference_positive_rate
    figures: dict[str, Any] = {
        "fired": False,
        "labelled": labelled,
        "min_labelled": s.min_labelled,
        "positive_rate": rate,
        "reference_positive_rate": reference,
        "reference_rows": champion.reference_rows,
        "rate_change": None if rate is None else rate - reference,
        "min_rate_change": s.min_rate_change,
        "test": None,
        "p_value": None,
        "alpha": s.label_shift_alpha,
        "note": "",
    }
    if rate is None:
        return {**figures, "note": "no labelled quality figures on the window"}
    test, p_value = positive_rate_test(labelled, rate, reference, champion.reference_rows)
    figures.update(test=test, p_value=p_value)
    if labelled < s.min_labelled:
        return {**figures, "note": f"{labelled} labelled rows, fewer than {s.min_labelled}"}
    fired = p_value < s.label_shift_alpha and abs(rate - reference) >= s.min_rate_change
    return {**figures, "fired": fired}


def positive_rate_test(
    rows: int, rate: float, reference_rate: float, reference_rows: int | None
) -> tuple[str, float]:
    """(test, two-sided p-value) of a positive ``rate`` over ``rows`` against the reference's:
    a pooled two-proportion z-test when the reference's rows are known, else an exact
    binomial test against ``reference_rate`` as the true rate."""
    from scipy.stats import binomtest, norm

    if not rows:
        return "none", 1.0
    if reference_rows is None:
        positives = round(rate * rows)
        return "exact binomial", float(binomtest(positives, rows, reference_rate).pvalue)
    pooled = (rate * rows + reference_rate * reference_rows) / (rows + reference_rows)
    variance = pooled * (1 - pooled) * (1 / rows + 1 / reference_rows)
    if variance <= 0:  # both sides all positive or all negative
        return "two-proportion z", 1.0 if rate == reference_rate else 0.0
    z = (rate - reference_rate) / math.sqrt(variance)
    return "two-proportion z", float(2 * norm.sf(abs(z)))


def _drift(window: dict[str, Any], champions: bool, s: RetrainingSettings) -> dict[str, Any]:
    drift = window.get("drift") or {}
    share = drift.get("share")
    note = ""
    if share is None:
        note = "no drift check on the window (too few rows, or no reference)"
    elif not champions:
        note = f"the window was answered by version {window.get('reference_version')}"
    elif s.drift_without_labels_only and (window.get("labelled") or 0) >= s.min_labelled:
        note = "enough labels to judge performance: drift alone does not retrain"
    return {
        "fired": not note and share is not None and share >= s.drift_share,
        "share": share,
        "drift_share": s.drift_share,
        "drifted": drift.get("drifted", []),
        "alpha": drift.get("alpha"),
        "note": note,
    }


def _age(champion: ChampionState, now: datetime, s: RetrainingSettings) -> dict[str, Any]:
    age = now - champion.trained_until
    return {
        "fired": age >= s.max_age_days * DAY,
        "trained_until": champion.trained_until.isoformat(),
        "model_age_days": age / DAY,
        "max_age_days": s.max_age_days,
    }


def _guard(
    now: datetime, last: datetime | None, in_progress: bool, s: RetrainingSettings
) -> dict[str, Any]:
    """What may hold a firing rule back: a retrain running, the cooldown since the last."""
    since = None if last is None else now - last
    remaining = 0.0 if since is None else max(0.0, (s.cooldown_days * DAY - since) / DAY)
    return {
        "in_progress": in_progress,
        "last_retrain_at": None if last is None else last.isoformat(),
        "days_since_last_retrain": None if since is None else since / DAY,
        "cooldown_days": s.cooldown_days,
        "cooldown_remaining_days": remaining,
    }


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} ({value}) has no time zone: pass a timezone-aware datetime")


# -- the message -------------------------------------------------------------------------------


def _message(
    reason: Reason | None,
    blocked: Blocked | None,
    rules: dict[str, dict[str, Any]],
    guard: dict[str, Any],
    champion: ChampionState,
    training: tuple[datetime, datetime] | None,
) -> str:
    version = f"v{champion.version}"
    if reason is None:
        return f"hold {version}: no rule fired ({'; '.join(_said(r, rules[r]) for r in RULES)})"
    why = _said(reason, rules[reason])
    if blocked == "in_progress":
        return f"blocked: {why}, but a retrain is already in progress"
    if blocked == "cooldown":
        left = guard["cooldown_remaining_days"]
        return f"blocked by the cooldown ({left:.1f} of {guard['cooldown_days']} days left): {why}"
    assert training is not None
    return (
        f"retrain {version} ({reason}): {why}; train on "
        f"{training[0]:%Y-%m-%d} to {training[1]:%Y-%m-%d}"
    )


def _said(rule: str, e: dict[str, Any]) -> str:
    """One rule's figures in a few words."""
    if rule != "age" and e.get("note"):
        return f"{rule}: {e['note']}"
    if rule == "risk":
        verb = ">" if e["fired"] else "≤"
        return (
            f"{e['loss']} risk over {e['labelled']} rows {e['mean']:.4f}, lower bound "
            f"{e['lower']:.4f} {verb} holdout bound {e['source_upper']:.4f} + {e['tolerance']:g}"
        )
    verb = "<" if e["fired"] else "≥"
    if rule == "performance" and "accuracy" in e:
        return (
            f"accuracy {e['accuracy']:.3f}, upper bound {e['accuracy_high']:.3f} {verb} holdout "
            f"{e['holdout_accuracy']:.3f} − {e['accuracy_drop']:g}"
        )
    if rule == "label_shift" and "class_share" in e:
        return (
            f"class shares moved by up to {e['largest_share_change']:.3f} from the reference "
            f"(p = {e['p_value']:.2g})"
        )
    if rule == "performance":
        return (
            f"ROC-AUC {e['roc_auc']:.3f}, upper bound {e['roc_auc_high']:.3f} {verb} holdout "
            f"{e['holdout_roc_auc']:.3f} − {e['auc_drop']:g}"
        )
    if rule == "label_shift":
        return (
            f"positive rate {e['positive_rate']:.3f} vs reference "
            f"{e['reference_positive_rate']:.3f} (p = {e['p_value']:.2g})"
        )
    if rule == "drift":
        verb = "≥" if e["fired"] else "<"
        return f"drift share {e['share']:.2f} {verb} {e['drift_share']:g}"
    verb = "≥" if e["fired"] else "<"
    return f"model age {e['model_age_days']:.0f} days {verb} {e['max_age_days']}"
