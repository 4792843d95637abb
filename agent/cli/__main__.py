"""``python -m agent.cli``: the same as the ``resource-agent`` script."""

from agent.cli import main

main(prog_name="resource-agent")  # its name in usage lines and completion
