"""What the agent tells Prometheus (``GET /metrics``).

``agent.meters`` declares every metric the agent exports, on a registry of
its own (one per agent, so agents built side by side in one process never
mix); the parts that see a thing happen count it there: the sources their udev and
adb events, the store its commits, the API its requests and refusals.
``sink`` follows the event bus (holds, expiries, sessions) and reads the
resources and coordinators when Prometheus scrapes.
"""
