"""Torch networks that refine the classical engines (learned engines, a later issue).

Nothing here is used by the default pipeline yet: the default colorization engine is classical
(optical-flow propagation re-anchored to the reference), the measured CPU winner.
"""
