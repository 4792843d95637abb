"""Tests of the installed service under a real systemd (a container of this machine's OS)."""
