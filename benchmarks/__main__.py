"""List the benchmarks; run one with `python -m benchmarks.<name>`."""

import pkgutil

import benchmarks

if __name__ == "__main__":
    print("Benchmarks (run with: .venv/bin/python -m benchmarks.<name>):")
    for module in pkgutil.iter_modules(benchmarks.__path__):
        if not module.name.startswith("_"):
            print(f"  {module.name}")
