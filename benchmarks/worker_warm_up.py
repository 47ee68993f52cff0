"""Worker warm-up: the CPU of a worker's first provider call, after the bare warm-up (LiteLLM
and its tokenizer loaded) and after the full one (`api.container.warm_up_model_client`: the
OpenAI SDK's resource modules and one mocked completion too), each in a fresh process,
against the loopback fake provider in a process of its own. Four workers starting together
pay their first call at the same time on the machine's cores: that is what the full warm-up
moves to before they consume.

    .venv/bin/python -m benchmarks.worker_warm_up [--calls 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from benchmarks.pipeline_overhead import _start_provider

_PROBE = """
import asyncio, json, sys, time
from api.container import model_client, warm_up_model_client
from domain.llm import ModelRequest, ModelSpec
if sys.argv[1] == "full":
    warm_up_model_client()
else:
    model_client().count_tokens(ModelSpec(name="w", litellm_model="gpt-4o-mini"), "warm-up")
spec = ModelSpec(name="m", litellm_model="openai/gpt-4o-mini", api_base=sys.argv[2])
client = model_client()

async def calls():
    spent = []
    for _ in range(int(sys.argv[3])):
        started = time.process_time()
        await client.complete(ModelRequest(model=spec, max_tokens=100, messages=[
            {"role": "user", "content": "<source_text>\\nI grew up in Porto.\\n</source_text>"}]))
        spent.append(time.process_time() - started)
    await client.aclose()
    return spent

print(json.dumps(asyncio.run(calls())))
"""


def _probe(kind: str, api_base: str, calls: int) -> list[float]:
    done = subprocess.run([sys.executable, "-c", _PROBE, kind, api_base, str(calls)],
                          capture_output=True, text=True, timeout=120, check=True)
    return list(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5)
    args = parser.parse_args()
    provider, api_base = _start_provider(0.0)
    try:
        bare = _probe("bare", api_base, args.calls)
        full = _probe("full", api_base, args.calls)
    finally:
        provider.terminate()
    steady = sorted(bare[1:] + full[1:])[len(bare[1:] + full[1:]) // 2]
    print("worker warm-up: CPU of a fresh worker's calls (first, then the later ones' median)")
    for name, spent in (("bare warm-up", bare), ("full warm-up", full)):
        later = sorted(spent[1:])[len(spent[1:]) // 2]
        print(f"  {name:13} first call {spent[0] * 1000:7.1f} ms  later {later * 1000:5.1f} ms"
              f"  first/steady {spent[0] / steady:5.1f}x")
    print(f"  the full warm-up takes {1 - full[0] / bare[0]:.0%} of the first call's CPU off it")


if __name__ == "__main__":
    main()
