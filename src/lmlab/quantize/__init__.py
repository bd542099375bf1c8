"""Weight-only quantisation (int8 per channel, int4 in groups): schemes, layers that compute
with quantised weights, and quantised run directories (``lmlab quantize``)."""
