"""``python -m attnviz.costs.measure``: run :func:`attnviz.costs.measure` for a JSON list of runs
read from stdin and write the measurements to stdout (see :func:`attnviz.costs.measurement.main`).
What :func:`attnviz.costs.measure_isolated` starts in a fresh process; run it, do not import it
(as a submodule it would shadow the function ``attnviz.costs.measure``)."""

from attnviz.costs.measurement import main

if __name__ == "__main__":
    main()
