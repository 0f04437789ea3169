"""Small graphs for paired-sequence data (``pairs:``), written as graph files (dicts)."""
from __future__ import annotations

from .block_cases import edge, node


def prefix_lm(source_len: int, target_len: int, vocab: int, width: int = 16) -> dict:
    """The packed source and decoder input read as one sequence by causal self-attention: a
    decoder-only encoder-decoder, enough to check data, loss and decoding without cross-attention."""
    part = max(source_len, target_len)
    steps = 3 * part  # the mask part is read as tokens 0 and 1 after the rest: harmless
    return {"format": "layerloom-graph", "version": 2,
            "nodes": [node("tokens", "Input", {"shape": [steps], "dtype": "int64"}),
                      node("target", "Label", {"kind": "class index", "shape": [part]}),
                      node("embed", "Embedding", {"num_embeddings": vocab, "embedding_dim": width}),
                      node("pos", "PositionalEmbedding", {"max_len": steps, "embedding_dim": width}),
                      node("attn", "MultiHeadSelfAttention",
                           {"embed_dim": width, "num_heads": 2, "causal": True}),
                      node("add", "Add"),
                      node("decoder", "Slice", {"dim": 1, "start": part, "end": 2 * part}),
                      node("logits", "Dense", {"out_features": vocab}),
                      node("loss", "CrossEntropyLoss")],
            "edges": [edge("tokens.y", "embed.x"), edge("embed.y", "pos.x"),
                      edge("pos.y", "attn.x"), edge("pos.y", "add.a"), edge("attn.y", "add.b"),
                      edge("add.y", "decoder.x"), edge("decoder.y", "logits.x"),
                      edge("logits.y", "loss.input"), edge("target.y", "loss.target")],
            "training": {"optimizer": "adam", "lr": 0.01, "batch_size": 32, "epochs": 1}}
