"""Metrics, tables and plots over run directories. Reads results; runs no engine."""
