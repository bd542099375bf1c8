#!/usr/bin/env bash
# Build the peers that lmlab's benchmarks run side by side, from local checkouts of their
# public repositories (nothing is downloaded here). Usage (or `make bench-peers`):
#
#   benchmarks/peers/build.sh OUT [KENLM_SRC] [GLOVE_SRC] [NANOGPT_SRC]
#
#   KENLM_SRC    a checkout of https://github.com/kpu/kenlm (needs cmake, a C++ compiler,
#                Boost program_options/system/thread/test, zlib, bzip2, lzma: on Debian
#                apt-get install cmake g++ libboost-program-options-dev libboost-system-dev
#                libboost-thread-dev libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev)
#                -> OUT/kenlm/bin/lmplz, OUT/kenlm/bin/query
#   GLOVE_SRC    a checkout of https://github.com/stanfordnlp/GloVe (make, a C compiler)
#                -> OUT/glove/build/{vocab_count,cooccur,shuffle,glove}
#   NANOGPT_SRC  a checkout of https://github.com/karpathy/nanoGPT (pure Python; run with the
#                same PyTorch as lmlab, $PYTHON, which gets tiktoken and requests installed)
#                -> OUT/nanoGPT (a copy, so its data/ can be written)
#
# An empty or "-" argument skips that peer. benchmarks/peers/paths.py finds the results in OUT
# (default ../peers-build beside the checkout; override with LMLAB_PEERS).
set -euo pipefail
out=${1:?usage: build.sh OUT [KENLM_SRC] [GLOVE_SRC] [NANOGPT_SRC]}
kenlm=${2:-}; glove=${3:-}; nanogpt=${4:-}
mkdir -p "$out"
out=$(cd "$out" && pwd)
jobs=$(nproc 2>/dev/null || echo 2)

if [ -n "$kenlm" ] && [ "$kenlm" != - ]; then
    echo "== KenLM from $kenlm ($(git -C "$kenlm" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    mkdir -p "$out/kenlm"
    cmake -S "$kenlm" -B "$out/kenlm" -DKENLM_MAX_ORDER=6 -DCMAKE_BUILD_TYPE=Release >"$out/kenlm.log" 2>&1
    make -C "$out/kenlm" -j"$jobs" lmplz query >>"$out/kenlm.log" 2>&1
    ls -l "$out/kenlm/bin/lmplz" "$out/kenlm/bin/query"
fi
if [ -n "$glove" ] && [ "$glove" != - ]; then
    echo "== Stanford GloVe from $glove ($(git -C "$glove" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    rm -rf "$out/glove" && cp -r "$glove" "$out/glove"
    make -C "$out/glove" >"$out/glove.log" 2>&1
    ls -l "$out/glove/build/glove"
fi
if [ -n "$nanogpt" ] && [ "$nanogpt" != - ]; then
    echo "== nanoGPT from $nanogpt ($(git -C "$nanogpt" rev-parse --short HEAD 2>/dev/null || echo '?'))"
    rm -rf "$out/nanoGPT" && cp -r "$nanogpt" "$out/nanoGPT"
    git -C "$nanogpt" rev-parse --short HEAD > "$out/nanoGPT/COMMIT" 2>/dev/null || true
    # its scripts import tiktoken and requests beside PyTorch; PYTHON is lmlab's interpreter
    "${PYTHON:-python3}" -m pip install -q tiktoken requests
    ls "$out/nanoGPT/train.py"
fi
echo "peers built under $out"
