"""OpenAI-compatible HTTP server and web playground for any lmlab run."""
