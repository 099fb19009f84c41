"""The blind human study (stage=human): study items, assignment and labels (study.py), secret
links and the Host check (access.py), agreement statistics (agreement.py), the report's
figures and files (summary.py), the local web server (server.py) and its two pages
(page.html for annotators, status.html for the organiser). docs/human-study.md."""
