"""``@traceyard.observe``: trace a function (sync, async, generator or async generator).

The tracer is looked up at call time: the current observation's tracer, else the installed
one; with neither, the function runs untouched. Arguments become the input, the return value
(or the yielded items) the output, and an exception ends the observation at level ERROR before
it propagates unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any, TypeVar, cast, overload

from traceyard import _global
from traceyard._internal import guard
from traceyard.capture.context import current_observation
from traceyard.capture.observation import ActiveObservation, InertObservation
from traceyard.model import ObservationType

F = TypeVar("F", bound=Callable[..., Any])

#: Items of a generator kept as its output; beyond this only the count is recorded.
MAX_GENERATOR_ITEMS = 1000


@overload
def observe(func: F) -> F: ...


@overload
def observe(
    *,
    name: str | None = None,
    as_type: ObservationType | str = ObservationType.SPAN,
    capture_input: bool = True,
    capture_output: bool = True,
) -> Callable[[F], F]: ...


def observe(
    func: F | None = None,
    *,
    name: str | None = None,
    as_type: ObservationType | str = ObservationType.SPAN,
    capture_input: bool = True,
    capture_output: bool = True,
) -> F | Callable[[F], F]:
    """Trace every call of the decorated function as an observation."""

    def decorate(fn: F) -> F:
        obs_name = name or fn.__qualname__
        obs_type = ObservationType(as_type)
        signature = inspect.signature(fn)

        def start(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            tracer = _current_tracer()
            if tracer is None:
                return None
            fields: dict[str, Any] = {}
            if capture_input:
                fields["input"] = _arguments(signature, args, kwargs)
            return tracer.span(obs_name, as_type=obs_type, **fields)

        if inspect.isasyncgenfunction(fn):
            return cast(F, _wrap_async_generator(fn, start, capture_output))
        if inspect.isgeneratorfunction(fn):
            return cast(F, _wrap_generator(fn, start, capture_output))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                span = start(args, kwargs)
                if span is None:
                    return await fn(*args, **kwargs)
                with span:
                    result = await fn(*args, **kwargs)
                    if capture_output:
                        span.update(output=result)
                    return result

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            span = start(args, kwargs)
            if span is None:
                return fn(*args, **kwargs)
            with span:
                result = fn(*args, **kwargs)
                if capture_output:
                    span.update(output=result)
                return result

        return wrapper  # type: ignore[return-value]

    return decorate(func) if func is not None else decorate


def _current_tracer() -> Any:
    observation = current_observation.get()
    if observation is not None:
        tracer = observation._tracer
        if tracer.enabled and not tracer.stopped:
            return tracer
    return _global.installed_tracer


def _arguments(signature: inspect.Signature, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    try:
        bound = signature.bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    arguments = dict(bound.arguments)
    arguments.pop("self", None)
    arguments.pop("cls", None)
    return arguments


class _Collected:
    """A generator's output: the items (bounded) and how many there were."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self.count = 0

    def add(self, item: Any) -> None:
        self.count += 1
        if len(self.items) < MAX_GENERATOR_ITEMS:
            self.items.append(item)

    def output(self) -> Any:
        if self.items and all(isinstance(i, str) for i in self.items):
            return "".join(self.items)
        if self.count > len(self.items):
            return {"items": self.items, "count": self.count}
        return self.items


def _wrap_generator(
    fn: Callable[..., Generator[Any, Any, Any]], start: Any, capture_output: bool
) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = start(args, kwargs)
        generator = fn(*args, **kwargs)
        if span is None:
            return (yield from generator)
        collected = _Collected()
        sent: Any = None
        try:
            while True:
                with _current(span):
                    item = generator.send(sent)
                collected.add(item)
                sent = yield item
        except StopIteration as stop:
            _end_ok(span, collected, capture_output)
            return stop.value
        except GeneratorExit:  # the consumer stopped early: not an error of the function
            _end_ok(span, collected, capture_output)
            raise
        except BaseException as exc:
            _end_error(span, exc)
            raise

    return wrapper


def _wrap_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]], start: Any, capture_output: bool
) -> Any:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        span = start(args, kwargs)
        generator = fn(*args, **kwargs)
        if span is None:
            async for item in generator:
                yield item
            return
        collected = _Collected()
        sent: Any = None
        try:
            while True:
                with _current(span):
                    item = await generator.asend(sent)
                collected.add(item)
                sent = yield item
        except (StopAsyncIteration, GeneratorExit):
            _end_ok(span, collected, capture_output)
        except BaseException as exc:
            _end_error(span, exc)
            raise

    return wrapper


class _current:
    """Make ``span`` the current observation for one step of a generator."""

    def __init__(self, span: ActiveObservation | InertObservation) -> None:
        self.span = span
        self.token: Any = None

    def __enter__(self) -> None:
        if isinstance(self.span, ActiveObservation):
            self.token = current_observation.set(self.span)

    def __exit__(self, *exc: object) -> None:
        if self.token is not None:
            current_observation.reset(self.token)


def _end_ok(
    span: ActiveObservation | InertObservation, collected: _Collected, capture: bool
) -> None:
    with guard.guarded("observe.generator_end"):
        if capture:
            span.end(output=collected.output())
        else:
            span.end()


def _end_error(span: ActiveObservation | InertObservation, exc: BaseException) -> None:
    span.__exit__(type(exc), exc, exc.__traceback__)
