# The docsync worker: CPU torch by default (build with --build-arg
# TORCH_INDEX=https://download.pytorch.org/whl/cu128 for CUDA), runs as a non-root user,
# model cache in /cache (mount a volume there), documents expected at /docs.
FROM python:3.11-slim

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PYTHONUNBUFFERED=1 \
    HF_HOME=/cache/huggingface

# Tesseract for OCR of scanned PDFs and images (DOCSYNC_OCR=auto finds it)
RUN apt-get update \
    && apt-get install -y --no-install-recommends tesseract-ocr tesseract-ocr-eng \
    && rm -rf /var/lib/apt/lists/*

RUN pip install --index-url "$TORCH_INDEX" "torch==$TORCH_VERSION"

WORKDIR /app
COPY pyproject.toml README.md ./
COPY plugin ./plugin
COPY worker ./worker
COPY docsync ./docsync
RUN pip install . \
    && useradd --create-home --uid 10001 docsync \
    && mkdir -p /cache /state \
    && chown docsync /cache /state

USER docsync
WORKDIR /state
ENTRYPOINT ["docsync"]
STOPSIGNAL SIGTERM
CMD ["run", "/docs"]
