"""yoloforge ga: the genetic algorithm — pure numpy operators, an ask/tell object, the Ray Tune adapter
(docs/architecture.md)."""
