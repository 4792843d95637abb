"""Sinks that keep each Jenkins controller in step.

``jenkins`` is the wire, ``plan`` the pure diff planner, ``sync`` the task per
controller, ``status`` how each is doing.
"""
