"""Download Hugging Face models into a cache folder at image build time (the `baked` target).

    python bake_models.py CACHE_DIR MODEL [MODEL ...]

Only for air-gapped clusters: by default no weights are put in an image; the services load them from the
cache mounted at HF_HOME. A gated model needs a token: pass it as a BuildKit secret (`--secret id=hf_token,...`),
never as a build argument (build arguments stay in the image's history).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) < 2:
        raise SystemExit("nothing to bake: build the `baked` target with --build-arg BAKE_MODELS='org/model ...'")
    from huggingface_hub import snapshot_download

    cache_dir = argv[0]
    secret = Path("/run/secrets/hf_token")
    token = secret.read_text().strip() if secret.exists() else os.environ.get("HF_TOKEN") or None
    for model in argv[1:]:
        path = snapshot_download(repo_id=model, cache_dir=cache_dir, token=token)
        print(f"baked {model} -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
