"""How vectors are computed: the engines behind `docsync.plugin.encoder.Encoder`.

- `runner`: batches of passages through the model's own module chain (torch), sized by a
  token budget, in the precision that suits the device;
- `lean`: one question through a BERT encoder's weights in a dozen operations a layer;
- `onnx_runtime`: the whole chain exported to ONNX (`DOCSYNC_BACKEND=onnx` / `onnx-int8`);
- `card`: what a model's first load leaves in the cache (dimension, token limit,
  tokenizer, a checked ONNX export), so that later processes need not load it;
- `questions`: one question embedded from a card's export, without torch.
"""
