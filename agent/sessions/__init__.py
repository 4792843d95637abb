"""Sinks that prepare a resource for each lock and clean it after: the one-shot sessions.

``steps`` is what each step of a ``[[session]]`` (``agent.config.sessions``) does (on a
phone through ``phone``, or a program through ``command``), ``journal`` the
sessions' records and logs, ``manager`` the service that runs them and the
gate Lock goes through.
"""
