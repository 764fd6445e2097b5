"""Design-space exploration over the registry's blocks: ``accelgen sweep`` (points from
grids, metrics as Dask tasks, a resumable SQLite store, Pareto reports)."""
