"""``python -m shoplm.data``: the ``shoplm data`` commands on their own."""

from shoplm.data.cli import data_app

data_app(prog_name="python -m shoplm.data")
