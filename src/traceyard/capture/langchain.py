"""Capture from LangChain and LangGraph: a callback handler that turns runs into events.

The handler is synchronous with ``run_inline = True``: its work is an append to a queue, so
async chains call it directly instead of paying a thread-pool hop per callback. Converting
messages, documents and LLM results to JSON is deferred to the writer thread (:class:`Lazy`).

End and error callbacks carry no name or metadata, so starts are remembered (bounded) by run id.
An end whose start was never seen still lands: the row is created from what the end knows.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast
from uuid import UUID

from traceyard._internal import guard
from traceyard._internal.serialize import Lazy
from traceyard.capture.context import current_observation, new_observation_id
from traceyard.capture.observation import ActiveObservation, error_fields
from traceyard.cost.usage import normalize_usage
from traceyard.errors import MissingExtraError
from traceyard.model import Entity, Event, Level, ObservationType

try:
    from langchain_core.callbacks import BaseCallbackHandler
    from langchain_core.documents import Document
    from langchain_core.messages import BaseMessage
    from langchain_core.prompt_values import PromptValue
    from langchain_core.runnables.config import var_child_runnable_config
    from langchain_core.tracers.context import register_configure_hook
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise MissingExtraError("LangChain capture", "langchain") from exc

if TYPE_CHECKING:
    from traceyard.capture.tracer import Tracer

_Method = TypeVar("_Method", bound=Callable[..., None])

#: Open runs remembered at most; the oldest are forgotten first (their ends still land).
MAX_OPEN_RUNS = 100_000

#: Metadata keys that name the session or the user of a run, in the order we trust them.
_SESSION_KEYS = ("session_id", "thread_id", "conversation_id")
_USER_KEYS = ("user_id", "user")
#: LangChain's own tags on child runs; not the user's.
_INTERNAL_TAG_PREFIXES = ("seq:step:", "graph:step:", "langsmith:", "map:key:")
#: Invocation parameters that are not model parameters.
_NOT_PARAMETERS = frozenset({"_type", "model", "model_name", "stop", "tools", "functions"})


def _guarded(method: _Method) -> _Method:
    """Run a callback's body, reporting (never raising) our own errors.

    A plain try/except rather than ``with guard.guarded()``: a generator-based context manager
    costs about a microsecond, and LangChain calls these ~20 times per invoke.
    """
    where = f"langchain.{method.__name__}"

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            method(self, *args, **kwargs)
        except Exception as exc:
            guard.report(where, exc)

    return cast(_Method, wrapper)


class TraceyardCallbackHandler(BaseCallbackHandler):
    """A LangChain callback handler that records every run into a :class:`Tracer`."""

    run_inline = True
    raise_error = False

    def __init__(self, tracer: Tracer) -> None:
        self.tracer = tracer
        self.raise_error = guard.strict()
        self._runs: dict[UUID, ActiveObservation] = {}
        self._models: dict[UUID, str | None] = {}
        self._awaiting_first_token: set[UUID] = set()

    # ------------------------------------------------------------------ bookkeeping

    def current_run_observation(self) -> ActiveObservation | None:
        """The open run that LangChain says the caller is inside (for nesting our spans)."""
        config = var_child_runnable_config.get()
        if not config:
            return None
        manager = config.get("callbacks")
        run_id = getattr(manager, "parent_run_id", None)
        return self._runs.get(run_id) if run_id is not None else None

    def _start(
        self,
        run_id: UUID,
        parent_run_id: UUID | None,
        obs_type: ObservationType,
        name: str,
        fields: dict[str, Any],
        tags: list[str] | None,
        metadata: dict[str, Any] | None,
    ) -> None:
        tracer = self.tracer
        parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
        if parent is None and parent_run_id is None:
            parent = current_observation.get()  # a LangChain run inside a traceyard span
        if parent is not None:
            run, parent_id = parent.run, parent.id
        else:
            run, parent_id = tracer.new_run(run_id.hex), None
        observation = ActiveObservation(tracer, run, run_id.hex, parent_id, obs_type, name)
        runs = self._runs
        if len(runs) >= MAX_OPEN_RUNS:
            self._forget(next(iter(runs)))
        runs[run_id] = observation
        if metadata:
            fields["metadata"] = metadata
        if tags and parent_id is not None:
            fields["metadata"] = {**(metadata or {}), "tags": tags}
        fields["parent_id"] = parent_id
        fields["type"] = obs_type
        fields["name"] = name
        fields["start_time"] = time.time_ns()
        if parent_id is None:
            tracer.emit_trace(run, _trace_attributes(name, fields, tags, metadata))
        tracer.emit(
            run, Event(Entity.OBSERVATION, observation.id, run.trace_id, run.project, fields)
        )

    def _end(self, run_id: UUID, parent_run_id: UUID | None, fields: dict[str, Any]) -> None:
        observation = self._forget(run_id)
        if observation is None:  # the start was never seen: the end still lands
            parent = self._runs.get(parent_run_id) if parent_run_id is not None else None
            run = parent.run if parent is not None else self.tracer.new_run(run_id.hex)
            observation_id, trace_id = run_id.hex, run.trace_id
            if parent is not None:
                fields["parent_id"] = parent.id
        else:
            run, observation_id, trace_id = (
                observation.run,
                observation.id,
                observation.run.trace_id,
            )
        fields["end_time"] = time.time_ns()
        self.tracer.emit(
            run, Event(Entity.OBSERVATION, observation_id, trace_id, run.project, fields)
        )
        if observation is not None and observation.parent_id is None:
            attrs: dict[str, Any] = {k: fields[k] for k in ("input", "output") if k in fields}
            if attrs:
                self.tracer.emit_trace(run, attrs)

    def _forget(self, run_id: UUID) -> ActiveObservation | None:
        self._models.pop(run_id, None)
        self._awaiting_first_token.discard(run_id)
        return self._runs.pop(run_id, None)

    def _child_event(self, run_id: UUID, name: str, fields: dict[str, Any]) -> None:
        """A point-in-time observation under the run ``run_id`` (agent steps, custom events)."""
        parent = self._runs.get(run_id)
        if parent is None:
            return
        run = parent.run
        now = time.time_ns()
        fields.update(
            parent_id=parent.id, type=ObservationType.EVENT, name=name, start_time=now, end_time=now
        )
        self.tracer.emit(
            run, Event(Entity.OBSERVATION, new_observation_id(), run.trace_id, run.project, fields)
        )

    # ------------------------------------------------------------------ chains

    @_guarded
    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "chain"
        self._start(
            run_id,
            parent_run_id,
            ObservationType.CHAIN,
            name,
            {"input": _lc(inputs)},
            tags,
            metadata,
        )

    @_guarded
    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        fields = {"output": _lc(outputs)}
        if kwargs.get("inputs") is not None:  # streaming runs learn their input at the end
            fields["input"] = _lc(kwargs["inputs"])
        self._end(run_id, parent_run_id, fields)

    @_guarded
    def on_chain_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, parent_run_id, _error(error))

    # ------------------------------------------------------------------ models

    @_guarded
    def on_chat_model_start(
        self,
        serialized: dict[str, Any] | None,
        messages: list[list[Any]],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        fields = _model_fields(kwargs, metadata, run_id, self._models)
        fields["input"] = Lazy(_messages_json, messages)
        name = kwargs.get("name") or _serialized_name(serialized) or "chat_model"
        self._awaiting_first_token.add(run_id)
        self._start(run_id, parent_run_id, ObservationType.GENERATION, name, fields, tags, metadata)

    @_guarded
    def on_llm_start(
        self,
        serialized: dict[str, Any] | None,
        prompts: list[str],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        fields = _model_fields(kwargs, metadata, run_id, self._models)
        fields["input"] = prompts[0] if len(prompts) == 1 else list(prompts)
        name = kwargs.get("name") or _serialized_name(serialized) or "llm"
        self._awaiting_first_token.add(run_id)
        self._start(run_id, parent_run_id, ObservationType.GENERATION, name, fields, tags, metadata)

    @_guarded
    def on_llm_new_token(self, token: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if run_id not in self._awaiting_first_token:
            return
        self._awaiting_first_token.discard(run_id)
        observation = self._runs.get(run_id)
        if observation is not None:
            observation.update(completion_start_time=time.time_ns())

    @_guarded
    def on_llm_end(
        self, response: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        fields: dict[str, Any] = {"output": Lazy(_llm_result_json, response)}
        usage, model = _usage_and_model(response)
        if usage:
            fields["usage"] = usage
        model = model or self._models.get(run_id)
        if model:
            fields["model"] = model
        self._end(run_id, parent_run_id, fields)

    @_guarded
    def on_llm_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, parent_run_id, _error(error))

    # ------------------------------------------------------------------ tools and retrievers

    @_guarded
    def on_tool_start(
        self,
        serialized: dict[str, Any] | None,
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        inputs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "tool"
        fields = {"input": _lc(inputs) if inputs is not None else input_str}
        self._start(run_id, parent_run_id, ObservationType.TOOL, name, fields, tags, metadata)

    @_guarded
    def on_tool_end(
        self, output: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._end(run_id, parent_run_id, {"output": _lc(output)})

    @_guarded
    def on_tool_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, parent_run_id, _error(error))

    @_guarded
    def on_retriever_start(
        self,
        serialized: dict[str, Any] | None,
        query: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        name = kwargs.get("name") or _serialized_name(serialized) or "retriever"
        self._start(
            run_id,
            parent_run_id,
            ObservationType.RETRIEVER,
            name,
            {"input": query},
            tags,
            metadata,
        )

    @_guarded
    def on_retriever_end(
        self,
        documents: Sequence[Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, parent_run_id, {"output": Lazy(_documents_json, documents)})

    @_guarded
    def on_retriever_error(
        self,
        error: BaseException,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        self._end(run_id, parent_run_id, _error(error))

    # ------------------------------------------------------------------ agents and the rest

    @_guarded
    def on_agent_action(self, action: Any, *, run_id: UUID, **kwargs: Any) -> None:
        tool = getattr(action, "tool", None)
        self._child_event(
            run_id,
            f"agent_action:{tool}",
            {
                "input": {"tool": tool, "tool_input": getattr(action, "tool_input", None)},
                "metadata": {"log": getattr(action, "log", None)},
            },
        )

    @_guarded
    def on_agent_finish(self, finish: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self._child_event(
            run_id,
            "agent_finish",
            {
                "output": getattr(finish, "return_values", None),
                "metadata": {"log": getattr(finish, "log", None)},
            },
        )

    @_guarded
    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._child_event(run_id, name, {"input": data, "metadata": metadata})

    @_guarded
    def on_retry(self, retry_state: Any, *, run_id: UUID, **kwargs: Any) -> None:
        outcome = getattr(retry_state, "outcome", None)
        failure = outcome.exception() if outcome is not None and outcome.failed else None
        self._child_event(
            run_id,
            "retry",
            {
                "level": Level.WARNING,
                "status_message": f"{type(failure).__name__}: {failure}" if failure else None,
                "metadata": {"attempt": getattr(retry_state, "attempt_number", None)},
            },
        )


class NoOpCallbackHandler(BaseCallbackHandler):
    """What a disabled tracer hands out: LangChain skips every callback of it."""

    ignore_llm = True
    ignore_chain = True
    ignore_agent = True
    ignore_retriever = True
    ignore_retry = True
    ignore_chat_model = True
    ignore_custom_event = True
    run_inline = True


# ---------------------------------------------------------------------- install()


class _InstalledHandler:
    """Quacks like the ContextVar that langchain-core's configure hook reads, but holds one
    handler for the whole process: runs in every thread and task, given no callbacks, are
    captured too."""

    def __init__(self) -> None:
        self.handler: BaseCallbackHandler | None = None

    def get(self, default: Any = None) -> BaseCallbackHandler | None:
        return self.handler


_slot = _InstalledHandler()
register_configure_hook(_slot, inheritable=True)  # type: ignore[arg-type]


def install_handler(handler: BaseCallbackHandler) -> None:
    _slot.handler = handler


def uninstall_handler(handler: BaseCallbackHandler) -> None:
    if _slot.handler is handler:
        _slot.handler = None


# ---------------------------------------------------------------------- conversions


def _error(error: BaseException) -> dict[str, Any]:
    return error_fields(error)


def _serialized_name(serialized: Mapping[str, Any] | None) -> str | None:
    if not serialized:
        return None
    name = serialized.get("name")
    if name:
        return str(name)
    ids = serialized.get("id")
    return str(ids[-1]) if isinstance(ids, list) and ids else None


def _trace_attributes(
    name: str, fields: dict[str, Any], tags: list[str] | None, metadata: dict[str, Any] | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {"name": name, "input": fields.get("input")}
    if tags:
        user_tags = [t for t in tags if not t.startswith(_INTERNAL_TAG_PREFIXES)]
        if user_tags:
            attrs["tags"] = user_tags
    if metadata:
        for key in _SESSION_KEYS:
            if metadata.get(key) is not None:
                attrs["session_id"] = str(metadata[key])
                break
        for key in _USER_KEYS:
            if metadata.get(key) is not None:
                attrs["user_id"] = str(metadata[key])
                break
        attrs["metadata"] = {
            k: v
            for k, v in metadata.items()
            if not k.startswith(("langgraph_", "ls_", "lc_", "checkpoint_"))
        }
    return attrs


def _model_fields(
    kwargs: Mapping[str, Any],
    metadata: Mapping[str, Any] | None,
    run_id: UUID,
    models: dict[UUID, str | None],
) -> dict[str, Any]:
    params = kwargs.get("invocation_params") or {}
    model = (
        params.get("model")
        or params.get("model_name")
        or params.get("model_id")
        or (metadata or {}).get("ls_model_name")
    )
    models[run_id] = model
    fields: dict[str, Any] = {}
    if model:
        fields["model"] = str(model)
    parameters = {k: v for k, v in params.items() if k not in _NOT_PARAMETERS}
    if parameters:
        fields["model_parameters"] = parameters
    return fields


def _usage_and_model(response: Any) -> tuple[dict[str, int | float], str | None]:
    """Usage (canonical buckets) and response model of an LLMResult."""
    usage_raw: Any = None
    model: str | None = None
    generations = getattr(response, "generations", None) or []
    for group in generations:
        for generation in group:
            message = getattr(generation, "message", None)
            if message is None:
                continue
            usage_raw = usage_raw or getattr(message, "usage_metadata", None)
            meta = getattr(message, "response_metadata", None) or {}
            model = model or meta.get("model_name") or meta.get("model")
    llm_output = getattr(response, "llm_output", None) or {}
    if not usage_raw:
        usage_raw = llm_output.get("token_usage") or llm_output.get("usage")
    model = model or llm_output.get("model_name") or llm_output.get("model")
    return normalize_usage(usage_raw) if usage_raw else {}, model


_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}
_MAX_DEPTH = 20


def _lc(value: Any) -> Any:
    """Defer converting a chain's input/output (messages inside become chat messages)."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return Lazy(_lc_json, value)


def _lc_json(value: Any, depth: int = 0) -> Any:
    """LangChain values as plain JSON: messages, prompt values and documents made readable.

    isinstance checks, not ``hasattr``: probing a pydantic model for an attribute it lacks
    raises and catches an exception inside pydantic, which is slow on the writer thread.
    """
    if depth > _MAX_DEPTH or value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, Mapping):
        return {str(k): _lc_json(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lc_json(v, depth + 1) for v in value]
    if isinstance(value, BaseMessage):
        return _message_json(value)
    if isinstance(value, PromptValue):
        return {"messages": [_message_json(m) for m in value.to_messages()]}
    if isinstance(value, Document):
        return _documents_json([value])[0]
    return value


def _message_json(message: Any) -> dict[str, Any]:
    """A LangChain message as a plain chat message: role, content, tool calls."""
    fields = getattr(message, "__dict__", None) or {}
    kind = str(fields.get("type") or "")
    if kind.endswith("MessageChunk"):
        kind = kind[: -len("MessageChunk")].lower()
    role = _ROLES.get(kind) or fields.get("role") or kind or "unknown"
    result: dict[str, Any] = {"role": role, "content": fields.get("content")}
    for attr in ("name", "tool_call_id"):
        value = fields.get(attr)
        if value:
            result[attr] = value
    tool_calls = fields.get("tool_calls")
    if tool_calls:
        result["tool_calls"] = [
            {"id": c.get("id"), "name": c.get("name"), "arguments": c.get("args")}
            for c in tool_calls
        ]
    return result


def _messages_json(messages: list[list[Any]]) -> Any:
    converted = [[_message_json(m) for m in batch] for batch in messages]
    return converted[0] if len(converted) == 1 else converted


def _llm_result_json(response: Any) -> Any:
    outputs: list[Any] = []
    for group in getattr(response, "generations", None) or []:
        for generation in group:
            message = getattr(generation, "message", None)
            outputs.append(
                _message_json(message) if message is not None else getattr(generation, "text", None)
            )
    return outputs[0] if len(outputs) == 1 else outputs


def _documents_json(documents: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "page_content": getattr(d, "page_content", None),
            "metadata": getattr(d, "metadata", {}),
            "id": getattr(d, "id", None),
        }
        for d in documents
    ]


__all__ = ["NoOpCallbackHandler", "TraceyardCallbackHandler"]
