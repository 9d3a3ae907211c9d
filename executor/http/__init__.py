"""The live executor behind an OpenAI-compatible HTTP API (Starlette app, uvicorn server)."""
