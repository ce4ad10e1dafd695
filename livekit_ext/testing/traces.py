"""LiveKit's spans in memory, for tests and the demo: an OTel SDK ``TracerProvider`` with the
in-memory exporter, installed through LiveKit's own hook
(``livekit.agents.telemetry.set_tracer_provider``), and a printable span tree."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

UTTERANCE_ATTRIBUTES = ("lk.utterance.", "lk.pii.user_transcript")
"""What :func:`span_tree` prints of a span's attributes (the utterance's, by prefix)."""


@contextmanager
def recording_spans(
    *, allow_pii: bool | None = None, metadata: dict[str, Any] | None = None
) -> Iterator[Any]:
    """Record LiveKit's spans while inside; yields the ``InMemorySpanExporter``.

    ``allow_pii`` is passed on where the release takes it (1.8+: ``False`` makes LiveKit drop
    every ``lk.pii.*`` attribute), ``metadata`` as given (attributes stamped on every span).
    The provider that was set before is put back after.
    """
    from livekit.agents import telemetry
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    saved = telemetry.tracer._tracer_provider
    kwargs: dict[str, Any] = {"metadata": metadata} if metadata is not None else {}
    if allow_pii is not None:
        if "allow_pii" not in inspect.signature(telemetry.set_tracer_provider).parameters:
            raise TypeError("this livekit-agents release has no allow_pii")
        kwargs["allow_pii"] = allow_pii
    telemetry.set_tracer_provider(provider, **kwargs)
    try:
        yield exporter
    finally:
        telemetry.tracer.set_provider(saved)
        provider.shutdown()


def span_tree(
    spans: Sequence[Any],
    *,
    names: Sequence[str] | None = None,
    prefixes: Sequence[str] = UTTERANCE_ATTRIBUTES,
    t0: float | None = None,
) -> list[str]:
    """Lines of the spans as a tree (children under their parent, by start time): the name,
    start and duration (seconds after ``t0``, else after the first span), the attributes
    starting with ``prefixes`` and the links (``-> name [item]``). ``names``: only these spans
    (a child whose parent is left out hangs under its nearest kept ancestor)."""
    by_id = {s.context.span_id: s for s in spans}
    kept = [s for s in spans if names is None or s.name in names]
    kept_ids = {s.context.span_id for s in kept}

    def parent_of(span: Any) -> int | None:
        parent = span.parent
        while parent is not None:
            if parent.span_id in kept_ids:
                return int(parent.span_id)
            above = by_id.get(parent.span_id)
            parent = above.parent if above is not None else None
        return None

    children: dict[int | None, list[Any]] = {}
    for span in kept:
        children.setdefault(parent_of(span), []).append(span)
    origin = t0 if t0 is not None else min((s.start_time for s in kept), default=0) / 1e9
    lines: list[str] = []

    def walk(span: Any, depth: int) -> None:
        start = span.start_time / 1e9 - origin
        took = ((span.end_time or span.start_time) - span.start_time) / 1e9
        lines.append(f"{'  ' * depth}{span.name}  +{start:.2f}s ({took:.2f}s)")
        for key, value in sorted((span.attributes or {}).items()):
            if key.startswith(tuple(prefixes)):
                if isinstance(value, float) and key.endswith("_at"):
                    value = f"+{value - origin:.2f}s"
                lines.append(
                    f"{'  ' * depth}  {key} = {value!r}"
                    if isinstance(value, str)
                    else f"{'  ' * depth}  {key} = {value}"
                )
        for link in span.links:
            target = by_id.get(link.context.span_id)
            label = target.name if target is not None else "span"
            item = (link.attributes or {}).get("lk.utterance.item_id")
            lines.append(f"{'  ' * depth}  -> links to {label} [{item}]")
        for child in sorted(children.get(int(span.context.span_id), []), key=_start):
            walk(child, depth + 1)

    for root in sorted(children.get(None, []), key=_start):
        walk(root, 0)
    return lines


def _start(span: Any) -> int:
    return int(span.start_time)
