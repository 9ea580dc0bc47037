#!/usr/bin/env bash
# The measured parity errors of the committed tiny model fixtures (for docs/parity.md): kestrel's
# logits vs the timm/torchvision logits stored with each fixture. No Python needed.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -p kestrel-models --example tiny_parity_errors
