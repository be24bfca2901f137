"""The web service: the mesh for browsers and OpenAI clients, over HTTP and WebSocket (see service.py)."""
