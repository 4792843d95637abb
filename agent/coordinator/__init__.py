"""Sinks that keep each Jenkins controller in step, and free what Jenkins forgot.

``documents`` is what goes over the wire, ``jenkins`` the client that sends it,
``plan`` the pure diff planner, ``sync`` the task per controller, ``status`` how
each is doing, and ``reaper`` releases locks whose build has ended.
"""
