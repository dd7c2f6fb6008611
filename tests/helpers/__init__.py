"""What the tests share, and benchmarks may import: fake backends, emulators, books, corpora, kills."""
