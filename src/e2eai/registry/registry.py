"""The model registry: versions, their stages and their content-verified artifacts."""

from __future__ import annotations

import builtins
import math
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from e2eai.errors import (
    ArtifactNotFoundError,
    InvalidRegistrationError,
    InvalidStageTransitionError,
    ModelVersionNotFoundError,
)
from e2eai.registry.database import create_registry_engine, writer
from e2eai.registry.lineage import Lineage
from e2eai.registry.model_version import (
    ArtifactCheck,
    ArtifactRecord,
    ArtifactStatus,
    ModelVersion,
    StageTransition,
    VersionVerification,
)
from e2eai.registry.stages import (
    REGISTRATION_STAGES,
    Stage,
    check_transition,
    parse_stage,
)
from e2eai.registry.tables import (
    ArtifactRow,
    ModelVersionRow,
    StageTransitionRow,
    VersionAllocation,
    utc_now,
)
from e2eai.storage import ArtifactStore, fetch_verified, open_store, sha256_file, validate_key

if TYPE_CHECKING:
    from e2eai.config import Settings

# Model names become path segments, S3 keys and (on the cluster) Kubernetes resource names.
_MODEL_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]{0,126}[a-z0-9])?$")
_ARTIFACT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_FAMILY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def artifact_key(name: str, version: int, filename: str) -> str:
    """Store key of one artifact file: ``models/<name>/v<version>/<filename>``."""
    return validate_key(f"models/{name}/v{version}/{filename}")


@dataclass(frozen=True)
class _PreparedArtifact:
    """An artifact file checked and hashed, ready to upload."""

    name: str
    path: Path
    sha256: str
    size: int


class ModelRegistry:
    """Model versions with metrics, params, lineage and stage, in a SQL database; their files
    in the artifact store, each verified against its sha256 whenever it is fetched.

    Version numbers come from one registry-wide sequence: they increase, are never reused
    (not even after a failed registration) and identify a version on their own, so
    ``get(7)`` needs no model name. Safe to use from several processes at once.
    """

    def __init__(self, database_url: str, store: ArtifactStore) -> None:
        """Open the registry at SQLAlchemy ``database_url``, migrating its schema to the newest
        revision (creating it in an empty database)."""
        self.engine: Engine = create_registry_engine(database_url)
        self.store = store
        self._writer = writer(self.engine)

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelRegistry:
        """The registry at ``settings.registry.database_url`` over ``settings.artifacts``."""
        return cls(settings.registry.database_url, open_store(settings.artifacts))

    def close(self) -> None:
        """Release the database connections."""
        self.engine.dispose()

    def __enter__(self) -> ModelRegistry:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- writing -----------------------------------------------------------------------------

    def register(
        self,
        *,
        name: str,
        family: str,
        artifacts: Mapping[str, Path],
        metrics: Mapping[str, Any],
        params: Mapping[str, Any],
        lineage: Mapping[str, Any] | Lineage,
        stage: str | Stage = Stage.CANDIDATE,
    ) -> ModelVersion:
        """Register a new version of model ``name``; upload and hash its artifact files.

        ``artifacts`` maps artifact names to files; each is stored under
        ``models/<name>/v<version>/<file name>``. Metrics and params must be JSON values
        (finite numbers; numpy scalars, dates and paths are converted). ``lineage`` is checked
        against Lineage (``code_version`` defaults to the running code's). Registering straight
        as champion archives the current champion. Everything is validated before a version
        number is taken.
        """
        _check_pattern("model name", name, _MODEL_NAME, "lowercase letters, digits, '.', '_', '-'")
        _check_pattern("model family", family, _FAMILY, "letters, digits, '.', '_', '-'")
        initial = parse_stage(stage)
        if initial not in REGISTRATION_STAGES:
            allowed = ", ".join(sorted(s.value for s in REGISTRATION_STAGES))
            raise InvalidStageTransitionError(
                f"cannot register {name} as {initial.value}; a new version starts as: {allowed}"
            )
        clean_metrics = _json_mapping("metrics", metrics)
        clean_params = _json_mapping("params", params)
        checked_lineage = self._checked_lineage(lineage)
        prepared = _prepare_artifacts(artifacts, taken={})

        version = self._allocate_version(name)
        records = self._upload(name, version, prepared)
        reason = f"registered as {initial.value}"
        try:
            with Session(self._writer) as session, session.begin():
                now = utc_now()
                if initial is Stage.CHAMPION:
                    siblings = self._lock_versions_of(session, name)
                    self._archive_champion(siblings, version, reason, now)
                row = ModelVersionRow(
                    version=version,
                    name=name,
                    family=family,
                    stage=initial.value,
                    metrics=clean_metrics,
                    params=clean_params,
                    lineage=checked_lineage.model_dump(mode="json"),
                    created_at=now,
                    artifacts=[ArtifactRow(name=n, **r.model_dump()) for n, r in records.items()],
                    transitions=[
                        StageTransitionRow(
                            from_stage=None, to_stage=initial.value, reason=reason, at=now
                        )
                    ],
                )
                session.add(row)
                session.flush()
                return _to_model_version(row)
        except IntegrityError as exc:
            raise _integrity_problem(f"registering {name} v{version}", exc) from exc

    def add_artifacts(self, version: int, artifacts: Mapping[str, Path]) -> ModelVersion:
        """Add artifact files to an existing version (e.g. ``model.onnx`` after export).

        Artifacts are immutable: a name (or file name) the version already has is refused.
        """
        current = self.get(version)
        taken = {name: PurePosixPath(r.key).name for name, r in current.artifacts.items()}
        prepared = _prepare_artifacts(artifacts, taken=taken)
        records = self._upload(current.name, version, prepared)
        try:
            with Session(self._writer) as session, session.begin():
                row = self._row(session, version)
                row.artifacts.extend(
                    ArtifactRow(name=n, **r.model_dump()) for n, r in records.items()
                )
                session.flush()
                return _to_model_version(row)
        except IntegrityError as exc:
            raise _integrity_problem(f"adding artifacts to {current.label}", exc) from exc

    def transition(self, version: int, stage: str | Stage, reason: str) -> ModelVersion:
        """Move ``version`` to ``stage``, recording ``reason`` and the time.

        Allowed: candidate → canary | champion | rejected | archived; canary → champion |
        rejected | archived; champion → archived; archived → champion (rollback). Anything
        else raises InvalidStageTransitionError. A new champion archives the previous one
        (recorded on that version with the reason).
        """
        target = parse_stage(stage)
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidStageTransitionError(
                f"moving version {version} to {target.value} needs a reason (who/why)"
            )
        reason = reason.strip()
        try:
            with Session(self._writer) as session, session.begin():
                name = self._row(session, version).name
                # Lock every version of the model, always in version order, so that two
                # promotions at once serialise (PostgreSQL) instead of deadlocking; `row` is
                # re-read under the lock.
                siblings = self._lock_versions_of(session, name)
                row = next(r for r in siblings if r.version == version)
                check_transition(f"{name} v{version}", Stage(row.stage), target)
                now = utc_now()  # one instant for the whole change: archival and promotion
                if target is Stage.CHAMPION:
                    self._archive_champion(siblings, version, reason, now)
                row.transitions.append(
                    StageTransitionRow(
                        from_stage=row.stage, to_stage=target.value, reason=reason, at=now
                    )
                )
                row.stage = target.value
                session.flush()
                return _to_model_version(row)
        except IntegrityError as exc:
            raise _integrity_problem(f"moving version {version} to {target.value}", exc) from exc

    # -- reading -----------------------------------------------------------------------------

    def get(self, version: int) -> ModelVersion:
        """Version ``version``, or ModelVersionNotFoundError."""
        with Session(self.engine) as session, session.begin():
            return _to_model_version(self._row(session, version))

    def champion(self, name: str) -> ModelVersion | None:
        """The current champion of model ``name``, or None if it has none."""
        with Session(self.engine) as session, session.begin():
            row = session.scalars(
                select(ModelVersionRow).where(
                    ModelVersionRow.name == name, ModelVersionRow.stage == Stage.CHAMPION.value
                )
            ).one_or_none()
            return None if row is None else _to_model_version(row)

    def fetch_artifact(self, version: int, artifact: str, dest_dir: Path) -> Path:
        """Download artifact ``artifact`` of ``version`` into ``dest_dir``; return its path.

        The file keeps its stored file name. Its sha256 is checked against the record made at
        registration; on a mismatch nothing is left in ``dest_dir`` and ArtifactIntegrityError
        names the artifact, the expected and the actual hash.
        """
        model = self.get(version)
        record = model.artifact(artifact)
        dest = Path(dest_dir) / PurePosixPath(record.key).name
        return fetch_verified(
            self.store, record.key, dest, record.sha256, label=f"{model.label} {artifact!r}"
        )

    def verify(self, version: int) -> VersionVerification:
        """Re-hash every artifact of ``version`` in the store and compare with the records."""
        model = self.get(version)
        checks: list[ArtifactCheck] = []
        with tempfile.TemporaryDirectory(prefix="e2eai-verify-") as scratch:
            for name, record in model.artifacts.items():
                copy = Path(scratch) / f"{len(checks)}.bin"
                status: ArtifactStatus
                try:
                    self.store.download(record.key, copy)
                except ArtifactNotFoundError:
                    actual_sha, actual_size, status = None, None, "missing"
                else:
                    actual_sha, actual_size = sha256_file(copy), copy.stat().st_size
                    status = "ok" if actual_sha == record.sha256 else "modified"
                    copy.unlink()
                checks.append(
                    ArtifactCheck(
                        name=name,
                        uri=self.store.uri(record.key),
                        status=status,
                        expected_sha256=record.sha256,
                        actual_sha256=actual_sha,
                        expected_size=record.size,
                        actual_size=actual_size,
                    )
                )
        return VersionVerification(
            version=model.version,
            name=model.name,
            ok=all(check.status == "ok" for check in checks),
            artifacts=tuple(checks),
        )

    def list(self, name: str | None = None) -> list[ModelVersion]:
        """Every version (of model ``name`` if given), oldest first."""
        query = select(ModelVersionRow).order_by(ModelVersionRow.version)
        if name is not None:
            query = query.where(ModelVersionRow.name == name)
        with Session(self.engine) as session, session.begin():
            return [_to_model_version(row) for row in session.scalars(query)]

    # -- internals ---------------------------------------------------------------------------

    def _row(self, session: Session, version: int) -> ModelVersionRow:
        row = session.scalars(
            select(ModelVersionRow).where(ModelVersionRow.version == version)
        ).one_or_none()
        if row is None:
            raise ModelVersionNotFoundError(f"no model version {version} in the registry")
        return row

    def _lock_versions_of(self, session: Session, name: str) -> builtins.list[ModelVersionRow]:
        """Every version of ``name``, locked for this transaction and freshly read.

        PostgreSQL: row locks (SELECT ... FOR UPDATE). SQLite: the IMMEDIATE write transaction
        already holds the database's write lock; FOR UPDATE is not emitted there.
        """
        query = (
            select(ModelVersionRow)
            .where(ModelVersionRow.name == name)
            .order_by(ModelVersionRow.version)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return builtins.list(session.scalars(query))

    def _checked_lineage(self, lineage: Mapping[str, Any] | Lineage) -> Lineage:
        try:
            checked = (
                lineage if isinstance(lineage, Lineage) else Lineage.model_validate(dict(lineage))
            )
        except ValidationError as exc:
            raise InvalidRegistrationError(f"invalid lineage: {_pydantic_problems(exc)}") from exc
        except (TypeError, ValueError) as exc:
            raise InvalidRegistrationError(f"lineage must be a mapping: {exc}") from exc
        if checked.parent_version is not None:
            try:
                self.get(checked.parent_version)
            except ModelVersionNotFoundError:
                raise InvalidRegistrationError(
                    f"lineage.parent_version {checked.parent_version} is not in the registry"
                ) from None
        return checked

    def _allocate_version(self, name: str) -> int:
        with Session(self._writer) as session, session.begin():
            allocation = VersionAllocation(name=name, allocated_at=utc_now())
            session.add(allocation)
            session.flush()
            return allocation.version

    def _upload(
        self, name: str, version: int, prepared: builtins.list[_PreparedArtifact]
    ) -> dict[str, ArtifactRecord]:
        records: dict[str, ArtifactRecord] = {}
        for item in prepared:
            key = artifact_key(name, version, item.path.name)
            self.store.put_file(key, item.path)
            records[item.name] = ArtifactRecord(key=key, sha256=item.sha256, size=item.size)
        return records

    @staticmethod
    def _archive_champion(
        siblings: builtins.list[ModelVersionRow], new_version: int, why: str, at: datetime
    ) -> None:
        """Archive the champion among ``siblings`` (locked rows of one name) for ``new_version``.

        The partial unique index (one champion per name) is the last line of defence.
        """
        session = None
        for row in siblings:
            if row.stage == Stage.CHAMPION.value and row.version != new_version:
                row.transitions.append(
                    StageTransitionRow(
                        from_stage=row.stage,
                        to_stage=Stage.ARCHIVED.value,
                        reason=f"superseded by v{new_version} as champion: {why}",
                        at=at,
                    )
                )
                row.stage = Stage.ARCHIVED.value
                session = Session.object_session(row)
        if session is not None:
            session.flush()  # the old champion must be archived before the new one takes over


def _to_model_version(row: ModelVersionRow) -> ModelVersion:
    return ModelVersion(
        version=row.version,
        name=row.name,
        family=row.family,
        stage=Stage(row.stage),
        metrics=row.metrics,
        params=row.params,
        lineage=Lineage.model_validate(row.lineage),
        artifacts={
            a.name: ArtifactRecord(key=a.key, sha256=a.sha256, size=a.size) for a in row.artifacts
        },
        created_at=row.created_at,
        transitions=tuple(
            StageTransition(
                from_stage=None if t.from_stage is None else Stage(t.from_stage),
                to_stage=Stage(t.to_stage),
                reason=t.reason,
                at=t.at,
            )
            for t in row.transitions
        ),
    )


def _check_pattern(what: str, value: Any, pattern: re.Pattern[str], allowed: str) -> None:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise InvalidRegistrationError(f"invalid {what} {value!r}: use {allowed}")


def _prepare_artifacts(
    artifacts: Mapping[str, Path], *, taken: Mapping[str, str]
) -> list[_PreparedArtifact]:
    """Check every artifact (name, file exists, no clash) and hash it, before any upload.

    ``taken`` maps the artifacts the version already has to their stored file names.
    """
    if not isinstance(artifacts, Mapping):
        raise InvalidRegistrationError(
            f"artifacts must map artifact names to files, got {type(artifacts).__name__}"
        )
    files_seen: dict[str, str] = {filename: name for name, filename in taken.items()}
    prepared: list[_PreparedArtifact] = []
    for name, raw_path in artifacts.items():
        _check_pattern("artifact name", name, _ARTIFACT_NAME, "letters, digits, '.', '_', '-'")
        if name in taken:
            raise InvalidRegistrationError(
                f"artifact {name!r} already exists on this version; artifacts are immutable, "
                "register a new version instead"
            )
        path = Path(raw_path)
        if not path.is_file():
            problem = "is a directory (archive it first)" if path.is_dir() else "does not exist"
            raise InvalidRegistrationError(f"artifact {name!r}: {path} {problem}")
        if path.name in files_seen:
            raise InvalidRegistrationError(
                f"artifact {name!r}: file name {path.name!r} is already used by artifact "
                f"{files_seen[path.name]!r} of this version; each artifact needs its own file name"
            )
        try:
            validate_key(path.name)
        except ValueError as exc:
            raise InvalidRegistrationError(f"artifact {name!r}: {exc}") from exc
        files_seen[path.name] = name
        prepared.append(_PreparedArtifact(name, path, sha256_file(path), path.stat().st_size))
    return prepared


def _json_mapping(what: str, value: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidRegistrationError(f"{what} must be a mapping, got {type(value).__name__}")
    return _json_value(value, what)


def _json_value(value: Any, where: str) -> Any:
    """``value`` as plain JSON, or InvalidRegistrationError naming the offending path."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Enum):
        return _json_value(value.value, where)
    if isinstance(value, int) and not hasattr(value, "dtype"):
        return value
    if isinstance(value, float) and not hasattr(value, "dtype"):
        if not math.isfinite(value):
            raise InvalidRegistrationError(
                f"{where} is {value}: JSON has no NaN/infinity; record None for undefined values"
            )
        return value
    if hasattr(value, "dtype") and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return _json_value(value.item(), where)  # numpy / torch scalar
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidRegistrationError(f"{where} has a non-string key {key!r}")
            out[key] = _json_value(item, f"{where}[{key!r}]")
        return out
    if isinstance(value, list | tuple):
        return [_json_value(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if hasattr(value, "model_dump"):
        return _json_value(value.model_dump(mode="json"), where)
    raise InvalidRegistrationError(
        f"{where} is a {type(value).__name__}, which is not a JSON value"
    )


def _pydantic_problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in error['loc']) or 'lineage'}: {error['msg']}"
        for error in exc.errors()
    )


def _integrity_problem(action: str, exc: IntegrityError) -> InvalidRegistrationError:
    return InvalidRegistrationError(f"{action} conflicts with the registry: {exc.orig}")
