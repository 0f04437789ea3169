"""What both attention layers (MultiHeadSelfAttention, MultiHeadAttention) check and show of
their heads. A module of its own: a layer module importing another layer module would import
the registry half-way through (the registry imports every layer module)."""
from __future__ import annotations

from layerloom.engine.spec import AttrError


def check_heads(a: dict) -> None:
    """The heads split embed_dim evenly."""
    if a["embed_dim"] % a["num_heads"]:
        raise AttrError(f"embed_dim {a['embed_dim']} must divide by num_heads {a['num_heads']}")


def heads_label(a: dict) -> str:
    """"4×16 causal": heads × width per head."""
    return f"{a['num_heads']}×{a['embed_dim'] // a['num_heads']}" + (" causal" if a["causal"] else "")
