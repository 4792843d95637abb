"""The HTTP API: JSON-RPC for Jenkins (``jsonrpc``), REST for people (``rest``).

Their shapes are ``bodies`` (requests), ``schemas`` (answers) and ``openapi``.
"""
