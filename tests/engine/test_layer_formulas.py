"""Every node type explains itself: a forward and a backward formula, declared beside its forward,
that fill in with the node's own attribute values and render as Qt rich text.

A new layer without formulas, a placeholder naming an attribute the layer does not have, or an
unclosed <sub> fails here, naming the layer, before anyone opens the Explain tab.
"""
from html.parser import HTMLParser

import pytest

from layerloom.engine.block_types import STRUCTURAL
from layerloom.engine.explain import formula_text
from layerloom.engine.registry import LAYERS

NODE_TYPES = {**LAYERS, **STRUCTURAL}
# the Qt rich-text subset the formulas are written in
ALLOWED_TAGS = {"sub", "sup", "i", "b"}


class _Tags(HTMLParser):
    """Collects the problems of a rich-text fragment: unknown, unclosed or crossed tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in ALLOWED_TAGS:
            self.problems.append(f"<{tag}> is not in {sorted(ALLOWED_TAGS)}")
        self.open.append(tag)

    def handle_endtag(self, tag):
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.open[-1] if self.open else 'nothing'}")
        else:
            self.open.pop()


def rich_text_problems(text: str) -> list[str]:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser.problems + [f"<{tag}> never closed" for tag in parser.open]


def attr_sets(cls) -> list[dict]:
    """The validated defaults, and each example's attributes (all values the layer is shown with)."""
    sets = [dict(cls.validate_attrs({}))]
    sets += [dict(cls.validate_attrs(ex.attrs)) for ex in cls.examples]
    return sets


@pytest.mark.parametrize("type_id", sorted(NODE_TYPES))
def test_every_node_type_declares_formulas_that_fill_in_and_render(type_id):
    cls = NODE_TYPES[type_id]
    for name in ("formula", "backward_formula"):
        template = getattr(cls, name)
        assert template.strip(), f"{type_id}: {name} is empty"
        assert not rich_text_problems(template), f"{type_id}.{name}: {rich_text_problems(template)}"
        for attrs in attr_sets(cls):
            filled = template.format(**attrs)  # KeyError names a placeholder the layer lacks
            assert "{" not in filled and "}" not in filled, f"{type_id}.{name}: {filled}"
            assert not rich_text_problems(filled), f"{type_id}.{name} with {attrs}: {filled}"


def test_the_checker_catches_what_qt_would_render_wrong():
    assert rich_text_problems("e<sup>z<sub>k</sub></sup>") == []
    assert rich_text_problems("x<sub>t") == ["<sub> never closed"]
    assert rich_text_problems("x<sub>t</sup>") == ["</sup> closes sub", "<sub> never closed"]
    assert rich_text_problems("<table>") == ["<table> is not in ['b', 'i', 'sub', 'sup']",
                                             "<table> never closed"]


def test_formulas_show_the_nodes_own_numbers():
    leaky = LAYERS["LeakyReLU"]
    attrs = dict(leaky.validate_attrs({"negative_slope": 0.2}))
    assert formula_text(leaky.formula, attrs) == "y = x where x > 0, else 0.2·x"
    assert "0.2·dL/dy" in formula_text(leaky.backward_formula, attrs)
    bn = LAYERS["BatchNorm2d"]
    text = formula_text(bn.formula, dict(bn.validate_attrs({"eps": 1e-3, "momentum": 0.3})))
    assert "Var[x] + 0.001" in text and "momentum 0.3" in text
    # a placeholder the node lacks leaves the template readable rather than hiding the tab
    assert formula_text("y = {nothing}·x", {}) == "y = {nothing}·x"
