"""Metrics, tables and plots over run and sweep directories. Reads results; runs no engine.

- `load`: read and validate run / sweep directories (`InputError`, one line, names the file);
- `metrics`: per-request derived columns and `summary.csv`;
- `slo`: SLO attainment, goodput, throughput at SLO; `traffic`: swap traffic, replica load;
- `run_metrics`: all of a run's metrics in one frame; `compare`: ratios to a baseline policy;
- `timeline`, `gantt`: the binned series and per-request segments the plots draw;
- `plots`: seaborn figures; `plot_dir`: which plots a directory supports, and writing them.
Imports neither engine (DESIGN.md, import arrows).
"""
