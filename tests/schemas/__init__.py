"""JSON schemas of what the project sends to third parties, generated from their publishers' packages, for tests."""
