"""Serving trained models: an OpenAI-compatible API with dynamic batching (``spotrain serve``)."""
