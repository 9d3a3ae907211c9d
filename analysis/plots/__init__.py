"""Seaborn plots over run and sweep directories.

Every plot function returns a matplotlib `Figure` built on the Agg canvas (no pyplot, no
global figure state, no display needed), with labelled axes, units and a title; `save`
writes it as PNG. Tests inspect the returned figures.
"""
