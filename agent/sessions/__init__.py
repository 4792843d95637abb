"""Sinks that prepare a resource for each lock and clean it after: the one-shot sessions.

``rules`` is the ``[[session]]`` grammar, ``steps`` what each step does (on a
phone through ``phone``, or a program through ``command``), ``journal`` the
sessions' records and logs, ``manager`` the service that runs them and the
gate Lock goes through.
"""
