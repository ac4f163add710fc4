"""``python -m fastmf``: the ``fastmf`` command."""

from fastmf.cli import main

main(prog_name="fastmf")
