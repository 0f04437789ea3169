"""Auto-layout: columns by topological depth, left to right, wrapped into bands when very wide.

Pure Python over a Graph (no Qt) so it is tested without pixels. A long chain such as LeNet-5
(fourteen columns) would otherwise fit the window only at an unreadable zoom; wrapping the
columns into a few bands keeps the left-to-right reading order at a legible size.
"""
from __future__ import annotations

from layerloom.engine.graph import Graph, GraphError

DEFAULT_SIZE = (160.0, 70.0)
MARGIN = 40.0  # what zoom-to-fit leaves around the graph
LEGIBLE_ZOOM = 1.0  # fold until the graph fits at 100 %, else as close to it as possible


def depths(graph: Graph) -> dict[str, int]:
    """Longest-path depth from the sources; a source sits just before its nearest consumer
    (a Label goes beside the loss, not at the far left)."""
    order = graph.topological_order()
    depth: dict[str, int] = {}
    for n in order:
        preds = [depth[e.src[0]] for e in graph.edges_into(n)]
        depth[n] = max(preds) + 1 if preds else 0
    for n in order:
        if not graph.edges_into(n):
            consumers = [depth[e.dst[0]] for e in graph.edges_from(n)]
            if consumers:
                depth[n] = max(0, min(consumers) - 1)
    return depth


def _columns(graph: Graph, depth: dict[str, int]) -> list[list[str]]:
    """Nodes per depth, each column ordered by the mean row of its producers (fewer crossings)."""
    columns: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    row: dict[str, float] = {}
    for col in range(len(columns)):
        members = [n for n in graph.nodes if depth[n] == col]

        def key(n: str) -> tuple:
            preds = [row[e.src[0]] for e in graph.edges_into(n) if e.src[0] in row]
            return (0, sum(preds) / len(preds)) if preds else (1, 0.0)

        members.sort(key=key)  # stable: ties keep insertion order
        for i, n in enumerate(members):
            row[n] = float(i)
        columns[col] = members
    return [c for c in columns if c]


def bands_of(count: int, bands: int) -> list[range]:
    """``count`` columns split into ``bands`` runs whose lengths differ by one at most, longer
    first: 7 in 3 is 3, 2, 2 (equal runs of ⌈7/3⌉ left the loss alone in a third band)."""
    per, extra = divmod(count, bands)
    runs, start = [], 0
    for b in range(bands):
        size = per + (1 if b < extra else 0)
        if size:
            runs.append(range(start, start + size))
        start += size
    return runs


def _band_count(widths: list[float], heights: list[float], gap: float,
                viewport: tuple[float, float]) -> int:
    """The fewest bands that show the graph at a legible zoom in ``viewport`` (else the zoom that
    comes closest): a short chain stays on one row, LeNet-5 folds into three."""
    best, best_zoom = 1, 0.0
    for bands in range(1, len(widths) + 1):
        chunks = bands_of(len(widths), bands)
        w = max(sum(widths[c] + gap for c in ch) - gap for ch in chunks) + 2 * MARGIN
        h = sum(max(heights[c] for c in ch) for ch in chunks) + gap * (len(chunks) - 1) + 2 * MARGIN
        zoom = min(viewport[0] / w, viewport[1] / h, 1.0)
        if zoom >= LEGIBLE_ZOOM - 1e-9:
            return bands
        if zoom > best_zoom + 1e-9:
            best, best_zoom = bands, zoom
    return best


def layered_positions(graph: Graph, sizes: dict[str, tuple] | None = None,
                      viewport: tuple[float, float] = (1200.0, 800.0), col_gap: float = 120.0,
                      row_gap: float = 50.0) -> dict[str, tuple]:
    """Top-left position per node id; ``sizes`` are the drawn node sizes (defaults otherwise),
    ``viewport`` the visible canvas in scene units. A graph with a cycle returns {}."""
    if not graph.nodes:
        return {}
    try:
        columns = _columns(graph, depths(graph))
    except GraphError:
        return {}
    sizes = sizes or {}
    size = {n: sizes.get(n, DEFAULT_SIZE) for n in graph.nodes}
    widths = [max(size[n][0] for n in col) for col in columns]
    heights = [sum(size[n][1] for n in col) + row_gap * (len(col) - 1) for col in columns]
    out: dict[str, tuple] = {}
    band_top = 0.0
    for band in bands_of(len(columns), _band_count(widths, heights, col_gap, viewport)):
        band_h = max(heights[c] for c in band)
        x = 0.0
        for c in band:
            y = band_top + (band_h - heights[c]) / 2
            for n in columns[c]:
                out[n] = (x + (widths[c] - size[n][0]) / 2, y)
                y += size[n][1] + row_gap
            x += widths[c] + col_gap
        band_top += band_h + col_gap
    return out



def is_cramped(graph: Graph, sizes: dict[str, tuple], label_gap: float = 64.0) -> bool:
    """True when nodes overlap, or a wire between side-by-side nodes is too short to carry its
    shape label: such a file (hand-written, generated) is laid out when opened."""
    rects = {n: (node.pos[0], node.pos[1], *sizes.get(n, DEFAULT_SIZE))
             for n, node in graph.nodes.items()}
    items = list(rects.values())
    for i, (x, y, w, h) in enumerate(items):
        for (x2, y2, w2, h2) in items[i + 1:]:
            if x < x2 + w2 and x2 < x + w and y < y2 + h2 and y2 < y + h:
                return True
    for e in graph.edges:
        (x, y, w, h), (x2, y2, _, h2) = rects[e.src[0]], rects[e.dst[0]]
        side_by_side = y < y2 + h2 and y2 < y + h
        if side_by_side and 0 <= x2 - (x + w) < label_gap:
            return True
    return False


def free_position(graph: Graph, pos: tuple, sizes: dict[str, tuple] | None = None,
                  size: tuple = DEFAULT_SIZE, step: tuple = (0.0, 90.0), gap: float = 64.0,
                  exclude: tuple = ()) -> tuple[float, float]:
    """The first place from ``pos`` along ``step`` where a node of ``size`` keeps ``gap`` from
    every other node (room for a wire and its shape label): a new node never lands on another
    (Insert Flatten on the loss) or touching it so that their ports cannot be wired (Tab twice)."""
    sizes = sizes or {}
    rects = [(node.pos[0], node.pos[1], *sizes.get(n, DEFAULT_SIZE))
             for n, node in graph.nodes.items() if n not in exclude]
    x, y = float(pos[0]), float(pos[1])
    w, h = size
    for _ in range(200):
        if not any(x < x2 + w2 + gap and x2 < x + w + gap and y < y2 + h2 + gap / 2
                   and y2 < y + h + gap / 2 for x2, y2, w2, h2 in rects):
            break
        x, y = x + step[0], y + step[1]
    return x, y
