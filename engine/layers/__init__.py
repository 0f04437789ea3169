"""One module per layer family; each class registers itself with ``@register``."""
