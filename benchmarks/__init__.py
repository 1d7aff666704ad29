"""attnviz benchmarks: `make bench` (python -m benchmarks [NAME ...]) writes results/NAME.{json,md}."""
