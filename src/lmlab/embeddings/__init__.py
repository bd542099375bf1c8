"""Word embeddings: word2vec (CBOW, skip-gram) and GloVe, read-only vectors, evaluation."""
