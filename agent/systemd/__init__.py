"""The systemd side: sd_notify, the watchdog and status line, and logs journald reads well."""
