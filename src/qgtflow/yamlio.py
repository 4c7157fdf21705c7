"""The one YAML loader for user files (studies, workflow configs): safe, and refusing duplicate keys.

PyYAML's ``safe_load`` keeps the last of two equal keys (``tau: 1e-12`` ... ``tau: 1e-15``) without a
word; here a duplicate key is a YAML error naming its line and column, like any syntax error.
"""

from __future__ import annotations

import yaml


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            n_explicit = sum(key.tag != "tag:yaml.org,2002:merge" for key, _ in node.value)
            self.flatten_mapping(node)  # merged keys (<<) go first; an explicit key may override them
            seen = {}
            for key_node, _ in node.value[len(node.value) - n_explicit:]:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    continue  # reported by SafeLoader itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while reading a mapping", node.start_mark,
                        f"duplicate key {key!r} (first at line {seen[key].line + 1})", key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node):
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # beyond Python's int-from-string digit limit (4300): a YAML error, not a traceback
            digits = sum(c.isdigit() for c in str(node.value))
            raise yaml.constructor.ConstructorError(
                None, None, f"an integer of {digits} digits, too long to read; expected a number of float64 "
                "magnitude", node.start_mark) from None


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:int", _UniqueKeyLoader.construct_yaml_int)


def load(text: str):
    """Parse YAML text like ``yaml.safe_load``, refusing duplicate mapping keys (yaml.YAMLError)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
