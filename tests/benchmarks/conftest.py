collect_ignore_glob = ["*.py"]  # benchmarks are run by hand (bench_train.py), never collected
