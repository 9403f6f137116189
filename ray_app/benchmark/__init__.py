"""The engines stage's parts (ray_app/stages/engines.py runs them): its plan, the ranking through the bundle, the
inspection of the chosen configuration, and its outputs."""
