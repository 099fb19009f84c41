"""Know before you spend: estimates of API dollars, memory and hours (stage=plan).

* ``estimate``: pure functions of an architecture, a method and a machine (no I/O);
* ``architecture``: a model's shape from its preset, a local folder or the local HF cache;
* ``hardware``: the machine (a ``hardware`` preset, or this one detected);
* ``fit``: the check every train, generate and IFD run makes before loading anything;
* ``job``: one job's plan (what it would rate, train, generate and judge; what is reused);
* ``study``: job plans merged into one (shared work counted once), plan.json and plan.md.

The fit check and the plan call the same estimators, so they never disagree.
"""
