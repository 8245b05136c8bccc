"""Read YAML with the file and line of every mapping key, and GitLab's ``!reference`` tag.

Rules for callers: :func:`load_yaml` returns plain Python values where every mapping is a
:class:`Map` (a ``dict`` that also knows where each of its keys was written) and every
``!reference [job, key]`` is a :class:`Reference`; it raises :class:`YamlError` with the line of
the first syntax error. Anchors, aliases and ``<<`` merge keys work as in any YAML file.

PyYAML is used because its node tree keeps a mark (line and column) on every node, which is what
``file:line`` errors need, and because a tag like ``!reference`` is one constructor away; it is
imported here only, when a ``.yml`` pipeline is loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import yaml


@attrs.frozen
class Where:
    """A place in a pipeline file: the file and a 1-based line."""

    file: Path
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


class Map(dict[str, Any]):
    """A YAML mapping that remembers where it and each of its keys were written.

    ``where`` is the mapping itself, ``key_at[name]`` the place of a key. Merged maps (``extends``,
    ``include``) keep the place of whichever side supplied each key.
    """

    where: Where
    key_at: dict[str, Where]

    def __init__(self, where: Where, items: dict[str, Any] | None = None) -> None:
        super().__init__(items or {})
        self.where = where
        self.key_at = {}

    def at(self, key: str) -> Where:
        """Return where ``key`` was written, or where the mapping starts."""
        return self.key_at.get(key, self.where)


@attrs.frozen
class Reference:
    """``!reference [job, key, ...]``: the value at that path, filled in after ``extends``."""

    path: tuple[str, ...]
    where: Where


class YamlError(Exception):
    """The text is not valid YAML (or uses a tag GitLab does not have); ``where`` says where."""

    def __init__(self, where: Where, message: str) -> None:
        super().__init__(message)
        self.where = where
        self.message = message


class _Loader(yaml.SafeLoader):
    """A SafeLoader that accepts GitLab's ``!reference`` tag (converted by :func:`_convert`)."""


def _keep_reference(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return node  # never called: _convert handles the tag from the node tree


_Loader.add_constructor("!reference", _keep_reference)


def load_yaml(text: str, file: Path) -> Any:
    """Parse ``text`` (the content of ``file``) and return its value (``None`` when empty).

    Raises:
        YamlError: not valid YAML, a mapping key that is not a text, or a bad ``!reference``.
    """
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        return None if node is None else _convert(loader, node, file)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = " ".join(filter(None, [exc.context, exc.problem]))
        raise YamlError(Where(file, line), f"not valid YAML: {problem}") from exc
    except yaml.YAMLError as exc:
        raise YamlError(Where(file, 1), f"not valid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _where(node: yaml.Node, file: Path) -> Where:
    return Where(file, node.start_mark.line + 1)


def _convert(loader: _Loader, node: yaml.Node, file: Path) -> Any:
    where = _where(node, file)
    if node.tag == "!reference":
        if not isinstance(node, yaml.SequenceNode) or not all(
            isinstance(item, yaml.ScalarNode) for item in node.value
        ):
            raise YamlError(
                where, "!reference takes a list of names, like !reference [.setup, script]"
            )
        path = tuple(str(item.value) for item in node.value)
        if not path:
            raise YamlError(where, "!reference needs at least a job name and a key")
        return Reference(path, where)
    if node.tag.startswith("!") and not node.tag.startswith("!!"):
        raise YamlError(where, f"unknown YAML tag {node.tag} (GitLab knows only !reference)")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        result = Map(where)
        for key_node, value_node in node.value:
            key: object = loader.construct_object(key_node, deep=True)  # pyright: ignore[reportUnknownMemberType]
            if not isinstance(key, str | int | float | bool):
                raise YamlError(_where(key_node, file), f"a key must be a name, got {key!r}")
            name = str(key).lower() if isinstance(key, bool) else str(key)
            result[name] = _convert(loader, value_node, file)
            result.key_at[name] = _where(key_node, file)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, file) for item in node.value]
    return loader.construct_object(node, deep=True)  # pyright: ignore[reportUnknownMemberType]


def as_list(value: object) -> list[Any] | None:
    """Return ``value`` when it is a list (of values of any type), else ``None``."""
    if not isinstance(value, list):
        return None
    items: list[Any] = value  # pyright: ignore[reportUnknownVariableType]
    return items


def texts(value: object) -> list[str] | None:
    """Return ``value`` when it is a list of texts, else ``None``."""
    items = as_list(value)
    if items is None or not all(isinstance(item, str) for item in items):
        return None
    return [str(item) for item in items]
