"""The canvas: a QGraphicsScene that draws an engine Graph, and the view that shows it."""
