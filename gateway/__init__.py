"""The FastAPI gateway, the web console and the `yoi` command line."""
