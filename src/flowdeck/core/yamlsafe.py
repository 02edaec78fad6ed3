"""Bounded YAML for untrusted text: flow sources, YAML-typed inputs.

PyYAML's safe loader builds an alias as a shared reference, so a 579-byte "billion laughs"
document loads in microseconds; the cost comes later, when anything walks, validates or
serialises the result (hundreds of millions of nodes). So, before anything is constructed, the
composed node graph is measured as it would be once the aliases are expanded:

- at most `max_nodes` nodes and `max_depth` levels after expansion;
- an alias may not refer to a node that contains it (a structure that contains itself);
- the text itself is at most `max_chars` characters (libyaml, when present, also refuses more
  than 1,000 levels of nesting while it reads).

Aliases and merge keys (`<<: *defaults`) within those bounds keep working: Kestra flows use
them to share task settings. Dates stay text (`2025-06-01`), as Kestra (Jackson) reads them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import yaml

__all__ = ["FLOW_LIMITS", "INPUT_LIMITS", "YamlLimits", "YamlTooBig", "flow_identity",
           "load_yaml", "load_yaml_or_none"]


@dataclass(frozen=True, slots=True)
class YamlLimits:
    max_chars: int
    max_nodes: int
    max_depth: int = 100
    #: Seconds the measuring may take before the document is refused as too costly.
    time_budget: float = 2.0


#: A flow source: 1 MiB of text, 250,000 nodes once aliases are expanded.
FLOW_LIMITS = YamlLimits(max_chars=1 << 20, max_nodes=250_000)
#: A YAML-typed input value: 256 KiB of text, 50,000 nodes.
INPUT_LIMITS = YamlLimits(max_chars=256 << 10, max_nodes=50_000)


class YamlTooBig(ValueError):
    """A document refused for its size, depth, alias expansion or self-reference."""


def _without_timestamps(loader: type[Any]) -> type[Any]:
    loader.yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }
    return loader


class _PureLoader(yaml.SafeLoader):
    """YAML as Kestra (Jackson) reads it: `2025-06-01` stays text, never a Python date."""


_without_timestamps(_PureLoader)

if getattr(yaml, "__with_libyaml__", False):

    class _FastLoader(yaml.CSafeLoader):
        """The same, read by libyaml (several times faster)."""

    _without_timestamps(_FastLoader)
    _LOADER: type[Any] = _FastLoader
else:  # pragma: no cover - PyYAML built without libyaml
    _LOADER = _PureLoader


def load_yaml(text: str, limits: YamlLimits = FLOW_LIMITS) -> Any:
    """Parse one YAML document within `limits`.

    Raises `yaml.YAMLError` for what is not YAML, `YamlTooBig` (a ValueError) for a document
    past the limits, and ValueError for a value a tag cannot build (`!!int abc`).
    """
    if len(text) > limits.max_chars:
        raise YamlTooBig(f"the document is {len(text)} characters long; at most "
                         f"{limits.max_chars} are accepted")
    loader = _LOADER(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _measure(node, limits)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        if "maximum nesting depth" in str(getattr(exc, "problem", "")):  # libyaml's own cap
            raise YamlTooBig(_too_deep(limits)) from None
        raise
    except YamlTooBig:
        raise
    except RecursionError:
        raise YamlTooBig(_too_deep(limits)) from None
    except (ValueError, TypeError, OverflowError) as exc:
        raise ValueError(str(exc) or type(exc).__name__) from None
    finally:
        loader.dispose()


def _measure(root: yaml.Node, limits: YamlLimits) -> None:
    """Refuse a node graph whose expansion is too big, too deep or contains itself.

    Each distinct node is measured once (its expanded size and depth are remembered), so a
    graph of a few dozen nodes that expands to billions is refused after a few dozen steps.
    """
    deadline = time.monotonic() + limits.time_budget
    sizes: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded nodes, depth)
    open_nodes: set[int] = set()
    steps = 0

    def visit(node: yaml.Node, level: int) -> tuple[int, int]:
        nonlocal steps
        key = id(node)
        known = sizes.get(key)
        if known is not None:
            return known
        if key in open_nodes:
            raise YamlTooBig("an alias refers to a node that contains it (the document "
                             "refers to itself)")
        if level > limits.max_depth:
            raise YamlTooBig(_too_deep(limits))
        steps += 1
        if steps % 1024 == 0 and time.monotonic() > deadline:
            raise YamlTooBig("the document takes too long to read")
        if isinstance(node, yaml.ScalarNode):
            result = (1, 1)
        else:
            open_nodes.add(key)
            children: list[yaml.Node] = []
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    children.extend((k, v))
            else:
                children = list(node.value)
            total, depth = 1, 0
            for child in children:
                size, child_depth = visit(child, level + 1)
                total += size
                depth = max(depth, child_depth)
                if total > limits.max_nodes:
                    raise YamlTooBig(f"aliases expand to more than {limits.max_nodes} nodes"
                                     if steps <= limits.max_nodes else
                                     f"the document has more than {limits.max_nodes} nodes")
            open_nodes.discard(key)
            result = (total, depth + 1)
            if result[1] > limits.max_depth:
                raise YamlTooBig(_too_deep(limits))
        sizes[key] = result
        return result

    visit(root, 1)



def _too_deep(limits: YamlLimits) -> str:
    return f"nested too deeply (more than {limits.max_depth} levels)"


def load_yaml_or_none(text: str, limits: YamlLimits = FLOW_LIMITS) -> Any:
    """`load_yaml`, or None for anything it refuses (callers that only peek at a document and
    leave saying what is wrong to whoever validates it)."""
    try:
        return load_yaml(text, limits)
    except (yaml.YAMLError, ValueError):
        return None


def flow_identity(source: str) -> tuple[str, str] | None:
    """(namespace, id) of a flow's YAML, if it reads as one (to tell created from updated)."""
    doc = load_yaml_or_none(source)
    if isinstance(doc, dict) and isinstance(doc.get("namespace"), str) \
            and isinstance(doc.get("id"), str):
        return doc["namespace"], doc["id"]
    return None
