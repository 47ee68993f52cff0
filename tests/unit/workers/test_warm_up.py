"""A worker loads what its first call would otherwise load while other workers wait: LiteLLM,
its tokenizer and the OpenAI SDK's resource modules (`api.container.warm_up_model_client`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_warm_up_loads_the_sdk_a_first_call_would_import() -> None:
    # In a fresh interpreter: this one may have imported the SDK already.
    probe = ("import sys; from api.container import warm_up_model_client; "
             "before = 'openai.resources' in sys.modules; warm_up_model_client(); "
             "print(before, 'openai.resources' in sys.modules, 'litellm' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=120, check=True, cwd=ROOT,
                          env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PATH": ""})
    assert done.stdout.split() == ["False", "True", "True"], done.stderr[-2000:]
