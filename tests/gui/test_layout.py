"""Auto-layout: left to right by topological depth, folded into bands only when too wide."""
from layerloom.engine.graph import Graph, Node
from layerloom.gui.layout import depths, is_cramped, layered_positions


def chain(n: int) -> Graph:
    g = Graph()
    g.add_node(Node("x", "Input", {"shape": [4]}))
    prev = "x"
    for i in range(n):
        g.add_node(Node(f"a{i}", "ReLU"))
        g.connect((prev, "y"), (f"a{i}", "x"))
        prev = f"a{i}"
    return g


def test_depth_is_the_longest_path_and_a_label_sits_next_to_its_loss():
    g = chain(3)
    g.add_node(Node("t", "Label", {"kind": "values", "shape": [4]}))
    g.add_node(Node("loss", "MSELoss"))
    g.connect(("a2", "y"), ("loss", "input"))
    g.connect(("t", "y"), ("loss", "target"))
    d = depths(g)
    assert [d[n] for n in ("x", "a0", "a1", "a2", "loss")] == [0, 1, 2, 3, 4]
    assert d["t"] == 3


def test_a_short_chain_stays_on_one_row_left_to_right():
    g = chain(3)
    pos = layered_positions(g)
    xs = [pos[n][0] for n in ("x", "a0", "a1", "a2")]
    assert xs == sorted(xs) and len({pos[n][1] for n in pos}) == 1
    assert is_cramped(g, {})  # as built: every node at (0, 0)
    for n, p in pos.items():
        g.move(n, p)
    assert not is_cramped(g, {})


def test_a_long_chain_folds_into_bands_that_each_read_left_to_right():
    g = chain(13)
    pos = layered_positions(g, viewport=(1100, 800))
    rows = sorted({p[1] for p in pos.values()})
    assert 2 <= len(rows) <= 4
    order = g.topological_order()
    for row in rows:
        in_row = [n for n in order if pos[n][1] == row]
        assert [pos[n][0] for n in in_row] == sorted(pos[n][0] for n in in_row)
    assert [pos[n][1] for n in order] == sorted(pos[n][1] for n in order)


def test_overlapping_or_crowded_nodes_count_as_cramped():
    g = chain(1)
    g.move("a0", (170, 0))  # 10 px between a 160 px node and its neighbour: no room for a label
    assert is_cramped(g, {})
    g.move("a0", (400, 0))
    assert not is_cramped(g, {})


def test_a_graph_with_a_cycle_is_left_where_it_is():
    g = chain(2)
    g.edges.append(type(g.edges[0])(("a1", "y"), ("a0", "x")))  # bypass the rules on purpose
    assert layered_positions(g) == {}


def test_bands_share_the_columns_evenly_so_no_band_holds_one_column_alone():
    from layerloom.gui.layout import bands_of

    assert [len(b) for b in bands_of(7, 3)] == [3, 2, 2]
    assert [len(b) for b in bands_of(14, 3)] == [5, 5, 4]
    assert [list(b) for b in bands_of(3, 1)] == [[0, 1, 2]]
    g = chain(5)  # x, a0 … a4 and then a loss: seven columns
    g.add_node(Node("t", "Label", {"kind": "values", "shape": [4]}))
    g.add_node(Node("loss", "MSELoss"))
    g.connect(("a4", "y"), ("loss", "input"))
    g.connect(("t", "y"), ("loss", "target"))
    for width in (900, 1100):  # two and three columns to a band
        pos = layered_positions(g, viewport=(width, 900))
        # the loss shares its band with what feeds it: to their right, between them in height
        assert pos["loss"][0] > pos["a4"][0] and pos["a4"][1] <= pos["loss"][1] <= pos["t"][1]
