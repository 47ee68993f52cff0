"""The fuzzer's parts: schema discovery, value and operation strategies, the oracle, the seed."""
