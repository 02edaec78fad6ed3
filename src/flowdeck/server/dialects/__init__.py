"""One router per API vocabulary, each a thin mapping onto the engine and back."""
