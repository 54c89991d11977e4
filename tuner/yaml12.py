"""YAML with the YAML 1.2 core schema's rules for plain scalars, on PyYAML's safe loader.

PyYAML follows YAML 1.1, which differs from YAML 1.2 (and from ``ruamel.yaml``, Go, Rust, JavaScript loaders) on
the spellings ML configs use most: ``1e-3`` and ``1E3`` (no dot) are strings in 1.1 and numbers in 1.2; ``010`` is
8 in 1.1 and 10 in 1.2; ``yes``/``no``/``on``/``off`` are booleans in 1.1 and strings in 1.2; ``1:20`` is 80 in
1.1. Here plain scalars resolve by the 1.2 core schema (YAML 1.2.2, section 10.3.2):

- null: ``~``, ``null``, ``Null``, ``NULL`` and the empty scalar;
- bool: ``true``/``True``/``TRUE``, ``false``/``False``/``FALSE``;
- int: ``[-+]?[0-9]+`` (decimal, leading zeros allowed), ``0o[0-7]+``, ``0x[0-9a-fA-F]+``;
- float: ``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?``, ``[-+]?.inf`` and ``.nan`` (any of the three
  capitalisations);
- anything else is a string. Quoted scalars are always strings.
"""

from __future__ import annotations

import math
import re

import yaml

NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
BOOL = re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")
INT = re.compile(r"^(?:[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+)$")
FLOAT = re.compile(
    r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with the YAML 1.2 core schema for plain scalars (module docstring)."""

    yaml_implicit_resolvers: dict = {}


def _construct_int(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text, 10)


def _construct_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    text = loader.construct_scalar(node)
    lowered = text.lower()
    if lowered.endswith(".inf"):
        return -math.inf if text.startswith("-") else math.inf
    if lowered == ".nan":
        return math.nan
    return float(text)


def _construct_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool:
    return loader.construct_scalar(node).lower() == "true"


for _tag, _pattern, _first in (
    ("tag:yaml.org,2002:null", NULL, ["~", "n", "N", ""]),
    ("tag:yaml.org,2002:bool", BOOL, list("tTfF")),
    ("tag:yaml.org,2002:int", INT, list("-+0123456789")),
    ("tag:yaml.org,2002:float", FLOAT, list("-+.0123456789")),
    ("tag:yaml.org,2002:merge", re.compile(r"^(?:<<)$"), ["<"]),
):
    Yaml12Loader.add_implicit_resolver(_tag, _pattern, _first)
Yaml12Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
Yaml12Loader.add_constructor("tag:yaml.org,2002:float", _construct_float)
Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def load_yaml12(text: str):
    """Parse one YAML document with the 1.2 core schema's scalars (module docstring)."""
    return yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass: no arbitrary objects
