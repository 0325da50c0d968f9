"""How vectors are computed: the engines behind `docsync.plugin.encoder.Encoder`.

- `runner`: batches of passages through the model (torch; on a CPU the lean pass where it
  fits), sized by a token budget, in the precision that suits the device;
- `lean`: questions, and passages packed, through a BERT encoder's weights in a dozen
  operations a layer;
- `precisions`: which precision embeds fastest on this CPU, timed when a model's card is made;
- `onnx_runtime`: the whole chain exported to ONNX (`DOCSYNC_BACKEND=onnx` / `onnx-int8`);
- `card`: what a model's first load leaves in the cache (dimension, token limit, tokenizer,
  a checked ONNX export, the precision timing), so that later processes need not load it;
- `questions`: one question embedded from a card's export, without torch.
"""
