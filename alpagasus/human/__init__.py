"""The blind human study (stage=human): study items and labels (study.py), the local web
server (server.py) and its one page (page.html)."""
