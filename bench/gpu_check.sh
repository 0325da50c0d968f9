#!/usr/bin/env bash
# The GPU benchmarks, in under 5 minutes on a CUDA machine with nothing but the repository
# and its wheels:  bash bench/gpu_check.sh [WHEEL_DIR]
#
# WHEEL_DIR (optional) holds wheels of what the machine's Python lacks (pydantic,
# pydantic-settings, ...); they are installed into a temporary folder, nothing else is
# fetched. The model is the bge-small architecture (BERT, 12 layers, hidden 384, CLS pooling,
# normalised) with random weights and the BERT uncased tokenizer from tests/tokenizer/, so no
# download is needed: throughput and precision depend on the architecture, not the weights.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ $# -ge 1 ] && [ -d "$1" ]; then
  $PY -m pip install -q --no-index --no-deps --no-compile --upgrade --target /tmp/docsync-site "$1"/*.whl
  export PYTHONPATH="/tmp/docsync-site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" HF_HUB_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
model=/tmp/docsync-bge-small-random
$PY - "$model" <<'PY'
import sys, torch
from transformers import BertConfig, BertModel, BertTokenizerFast
from sentence_transformers import SentenceTransformer
try:
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
except ImportError:  # sentence-transformers before 6.2
    from sentence_transformers.models import Normalize, Pooling, Transformer
out = sys.argv[1]
tok = BertTokenizerFast.from_pretrained("tests/tokenizer")
torch.manual_seed(0)
config = BertConfig(vocab_size=tok.vocab_size, hidden_size=384, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=1536, max_position_embeddings=512)
BertModel(config).save_pretrained(out + "/hf")
tok.save_pretrained(out + "/hf")
modules = [Transformer(out + "/hf", max_seq_length=512), Pooling(384, pooling_mode="cls"), Normalize()]
SentenceTransformer(modules=modules, device="cpu").save(out + "/st")
print("model: bge-small architecture, random weights,", sum(p.numel() for p in BertModel(config).parameters()) // 10**6, "M parameters")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
export DOCSYNC_MODEL="$model/st" DOCSYNC_DEVICE=cuda
echo "== where docsync's time goes (tokenizer, model, feed alone), two batch budgets"
$PY bench/embed.py --synthetic 60000 --profile
DOCSYNC_TOKEN_BUDGET=262144 $PY bench/embed.py --synthetic 60000 --profile
echo "== embedding stage: stock encode (fp16, batch 512) vs docsync, synthetic chunks"
$PY bench/embed.py --synthetic 60000
echo "== embedding stage on the real corpus chunks"
$PY bench/embed.py
echo "== end to end: docsync sync vs a naive script, and the pipeline with a model that costs nothing"
$PY bench/sync.py --synthetic 200
echo "== gpu_check.sh done in ${SECONDS} s"
