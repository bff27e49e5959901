from shoplm.cli import app

app()
