"""Forwarding targets as configured: ``forward_targets`` / ``TRACEYARD_FORWARD_TARGETS``.

A JSON list, one object per target, told apart by ``type``::

    [{"type": "langfuse", "host": "https://cloud.langfuse.com",
      "public_key": "pk-lf-...", "secret_key": "sk-lf-..."},
     {"type": "otlp", "endpoint": "http://collector:4318/v1/traces",
      "headers": {"x-api-key": "..."}}]

Each target gets its own bounded queue and thread (:mod:`traceyard.forward.forwarder`), so
the options below are per target.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from traceyard.errors import ConfigError


class _TargetBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(
        None, description="Label in stats and /api/health (default: type and host)."
    )
    timeout_s: float = Field(10.0, gt=0, le=300, description="Seconds per request.")
    max_attempts: int = Field(
        5, ge=1, le=100, description="Tries per request before its spans count as failed."
    )
    max_queue_events: int = Field(
        50_000, ge=1, description="Events waiting for this target; beyond it they are dropped."
    )
    max_spans_per_request: int = Field(512, ge=1, le=100_000)
    flush_interval_s: float = Field(
        1.0, gt=0, le=60, description="Finished spans are sent at least this often."
    )


class LangfuseTarget(_TargetBase):
    """Langfuse, cloud or self-hosted: spans as OTLP with ``langfuse.*`` attributes on
    ``/api/public/otel/v1/traces``, scores on ``/api/public/ingestion``; HTTP Basic pk:sk."""

    type: Literal["langfuse"]
    host: str = Field(description="Base URL, e.g. https://cloud.langfuse.com")
    public_key: str = Field(min_length=1)
    secret_key: SecretStr

    @field_validator("host")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value, "host").rstrip("/")

    def label(self) -> str:
        return self.name or f"langfuse {self.host}"


class OtlpTarget(_TargetBase):
    """Any OTLP/HTTP receiver (OTel collector, Phoenix, MLflow, Langfuse, traceyard): spans
    with GenAI ``gen_ai.*`` and OpenInference attributes, protobuf."""

    type: Literal["otlp"]
    endpoint: str = Field(description="The full traces URL, e.g. http://host:4318/v1/traces")
    headers: dict[str, str] = Field(default_factory=dict, description="Sent with each request.")
    compression: Literal["gzip", "none"] = "gzip"

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        return _check_url(value, "endpoint")

    def label(self) -> str:
        return self.name or f"otlp {self.endpoint}"


ForwardTarget = Annotated[LangfuseTarget | OtlpTarget, Field(discriminator="type")]
_TARGETS: TypeAdapter[list[LangfuseTarget | OtlpTarget]] = TypeAdapter(list[ForwardTarget])


def parse_targets(raw: Any) -> list[LangfuseTarget | OtlpTarget]:
    """Targets from a JSON string, a list of dicts or of target models; ConfigError if bad."""
    if raw is None or raw == "":
        return []
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ConfigError(
                f"forward_targets (TRACEYARD_FORWARD_TARGETS) is not valid JSON: {exc}"
            ) from None
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, (list, tuple)):
        raise ConfigError("forward_targets must be a JSON list of target objects")
    items = [item.model_dump() if isinstance(item, BaseModel) else item for item in raw]
    for item in items:
        if isinstance(item, dict) and isinstance(item.get("secret_key"), SecretStr):
            item["secret_key"] = item["secret_key"].get_secret_value()
    try:
        return _TARGETS.validate_python(items)
    except ValidationError as exc:
        lines = ["invalid forward_targets (TRACEYARD_FORWARD_TARGETS):"]
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            lines.append(f"  [{where}]: {error['msg']}")
        lines.append(
            '  each target is {"type": "langfuse", "host", "public_key", "secret_key"} or '
            '{"type": "otlp", "endpoint", "headers"}'
        )
        raise ConfigError("\n".join(lines)) from None


def unique_labels(targets: list[LangfuseTarget | OtlpTarget]) -> list[str]:
    """Labels of the targets, numbered where two would read the same."""
    labels: list[str] = []
    for target in targets:
        label = target.label()
        candidate, n = label, 2
        while candidate in labels:
            candidate, n = f"{label} #{n}", n + 1
        labels.append(candidate)
    return labels


def _check_url(value: str, what: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{what} must be an http(s) URL, got {value!r}")
    return value.strip()
