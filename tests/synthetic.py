"""Small synthetic training frames with exactly the training-set contract's columns.

Seeded numpy; the label depends on a few features (precipitation, route delay rate, carrier,
departure hour, visibility) so that a model that learns reaches an ROC-AUC well above 0.5.
Some numeric values are NaN and some categories are None, as in the real frame.
``windows_hours`` names the trailing-rate columns, as ``features.windows_hours`` does;
``flight_task`` is the flight task those columns belong to.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd

from e2eai.tasks.flights import FlightTask, schema

CARRIERS = ("UA", "AA", "DL", "B6", "EV", "MQ", "WN", "US")
ORIGINS = ("EWR", "JFK", "LGA")
DESTS = ("ATL", "ORD", "LAX", "BOS", "MCO", "FLL", "SFO", "CLT", "MIA", "DCA", "IAH", "DEN")
ENGINE_TYPES = ("Turbo-fan", "Turbo-jet", "Reciprocating", "Turbo-prop")
_CARRIER_EFFECT = dict(zip(CARRIERS, (0.3, -0.2, -0.4, 0.2, 0.8, 0.5, 0.0, -0.3), strict=True))


def synthetic_frame(
    n: int = 3000,
    start: date = date(2013, 1, 1),
    days: int = 60,
    seed: int = 0,
    carriers: tuple[str, ...] = CARRIERS,
    windows_hours: tuple[int, ...] = schema.DEFAULT_WINDOWS_HOURS,
) -> pd.DataFrame:
    """A frame shaped like ``e2eai.features.store.training_set``: one row per flight, sorted."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp(start, tz="UTC")
    offsets = np.sort(rng.uniform(0, days * 24 * 3600, n))
    ts = t0 + pd.to_timedelta(offsets, unit="s")
    carrier = rng.choice(carriers, n)
    origin = rng.choice(ORIGINS, n)
    dest = rng.choice(DESTS, n)
    engine = rng.choice(np.array(ENGINE_TYPES, dtype=object), n, p=(0.7, 0.1, 0.1, 0.1))
    engine[rng.random(n) < 0.05] = None
    tailnum = np.array([f"N{k:03d}XX" for k in rng.integers(0, 400, n)])
    flight = rng.integers(1, 3000, n)

    cols: dict[str, np.ndarray] = {}
    cols["distance"] = rng.uniform(100, 2500, n)
    cols["dep_hour"] = rng.integers(5, 23, n).astype(float)
    cols["day_of_week"] = ts.dayofweek.to_numpy().astype(float)
    cols["month"] = ts.month.to_numpy().astype(float)
    cols["days_to_holiday"] = rng.integers(0, 60, n).astype(float)
    cols["plane_year"] = rng.integers(1985, 2013, n).astype(float)
    cols["seats"] = rng.choice([50, 100, 150, 200, 300], n).astype(float)
    cols["engines"] = rng.choice([1, 2, 2, 2, 4], n).astype(float)
    cols["plane_age"] = 2013 - cols["plane_year"]
    cols["temp"] = rng.normal(50, 15, n)
    cols["dewp"] = cols["temp"] - rng.uniform(0, 20, n)
    cols["humid"] = rng.uniform(20, 100, n)
    cols["wind_dir"] = rng.uniform(0, 360, n)
    cols["wind_speed"] = rng.gamma(2, 5, n)
    cols["wind_gust"] = np.where(rng.random(n) < 0.7, 0.0, cols["wind_speed"] * 1.3)
    cols["precip"] = np.where(rng.random(n) < 0.85, 0.0, rng.exponential(0.1, n))
    cols["pressure"] = rng.normal(1015, 8, n)
    cols["visib"] = np.clip(10 - rng.exponential(1.5, n), 0, 10)
    for entity in schema.STATS_ENTITIES:
        for window in windows_hours:
            count, rate = schema.stats_feature_names(entity, window)
            cols[count] = rng.poisson(5 * window / 24, n).astype(float)
            cols[rate] = rng.beta(2, 8, n)
    for window in schema.DEPARTURE_WINDOWS_HOURS:
        count, rate = schema.departure_feature_names(window)
        cols[count] = rng.poisson(20 * window, n).astype(float)
        cols[rate] = rng.beta(2, 8, n)

    logit = (
        -1.4
        + 6.0 * cols["precip"]
        + 4.0 * (cols[schema.stats_feature_names("route", windows_hours[0])[1]] - 0.2)
        + np.array([_CARRIER_EFFECT.get(c, 0.0) for c in carrier])
        + 0.08 * (cols["dep_hour"] - 14)
        - 0.15 * (cols["visib"] - 8)
        + rng.normal(0, 0.5, n)
    )
    delayed = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int8)

    # Missing values the real data has: unknown planes and unreported weather.
    for name in ("plane_year", "seats", "plane_age", "wind_gust", "pressure"):
        cols[name][rng.random(n) < 0.06] = np.nan

    # Aircraft rotation, from a generator of its own so the columns above (and the label)
    # stay what they were before these inputs existed; about half the flights have no
    # previous leg (all four missing), like the real ones.
    rotation = np.random.default_rng([seed, 1])
    gap = rotation.uniform(30, 1440, n)
    cols["prev_leg_gap_minutes"] = gap
    cols["prev_leg_dep_delay"] = rotation.normal(10, 35, n)
    cols["prev_leg_arr_delay"] = cols["prev_leg_dep_delay"] + rotation.normal(-5, 10, n)
    cols["prev_leg_slack_minutes"] = gap - rotation.uniform(100, 500, n)
    no_leg = rotation.random(n) < 0.5
    for name in schema.rotation_feature_names(1):
        cols[name][no_leg] = np.nan
    # Earlier legs of the day (generator of their own again): fewer flights have them, and
    # only those with a previous leg.
    earlier = np.random.default_rng([seed, 2])
    lacks = no_leg
    for leg in range(2, schema.ROTATION_LEGS + 1):
        gap_k, dep_k, arr_k, slack_k = schema.rotation_feature_names(leg)
        cols[gap_k] = gap + earlier.uniform(60, 300, n) * (leg - 1)
        cols[dep_k] = earlier.normal(10, 35, n)
        cols[arr_k] = cols[dep_k] + earlier.normal(-5, 10, n)
        cols[slack_k] = cols[gap_k] - earlier.uniform(100, 500, n)
        lacks = lacks | (earlier.random(n) < 0.6)
        for name in (gap_k, dep_k, arr_k, slack_k):
            cols[name][lacks] = np.nan

    frame = pd.DataFrame(
        {
            schema.FLIGHT_ID: [
                f"{t:%Y%m%d}-{c}-{f}-{o}"
                for t, c, f, o in zip(ts, carrier, flight, origin, strict=True)
            ],
            schema.EVENT_TIMESTAMP: ts.astype("datetime64[ns, UTC]"),
            "origin": origin.astype(object),
            "tailnum": tailnum.astype(object),
            "carrier": carrier.astype(object),
            "route": np.char.add(np.char.add(origin, "-"), dest).astype(object),
        }
    )
    for feature in schema.model_features(windows_hours):
        if feature.kind == "numeric":
            frame[feature.name] = cols[feature.name].astype(np.float32)
        elif feature.name == "engine_type":
            frame[feature.name] = engine
        elif feature.name == "dest":
            frame[feature.name] = dest.astype(object)
        # carrier / origin are already there as entity keys and features
    frame[schema.LABEL] = delayed
    frame["arr_delay"] = np.where(delayed == 1, rng.uniform(15, 120, n), rng.uniform(-20, 14, n))
    return frame.reset_index(drop=True)


def flight_task(windows_hours: tuple[int, ...] = schema.DEFAULT_WINDOWS_HOURS) -> FlightTask:
    """The flight task with trailing windows ``windows_hours`` (``features.windows_hours``)."""
    from e2eai.config import Settings

    return FlightTask.from_settings(Settings(features={"windows_hours": windows_hours}))


def small_training_settings(home, windows_hours: tuple[int, ...] | None = None, **training):
    """Settings for fast runs on ``synthetic_frame(days=75)``: Jan–Feb train, 14-day holdout.

    ``windows_hours``: ``features.windows_hours`` (the flight task's trailing windows).
    """
    from pathlib import Path

    from e2eai.config import ArtifactSettings, RegistrySettings, Settings, TrainingSettings

    home = Path(home)
    defaults = dict(
        train_start=date(2013, 1, 1),
        train_end=date(2013, 2, 28),
        validation_days=10,
        holdout_days=14,
        workers=1,
        epochs=6,
        batch_size=256,
        hidden_width=64,
        early_stopping_patience=3,
    )
    features = {} if windows_hours is None else {"features": {"windows_hours": windows_hours}}
    return Settings(
        home=home,
        **features,
        training=TrainingSettings(**{**defaults, **training}),
        registry=RegistrySettings(database_url=f"sqlite:///{home / 'registry.db'}"),
        artifacts=ArtifactSettings(uri=str(home / "artifacts")),
    )
