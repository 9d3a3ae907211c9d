"""A load generator for OpenAI-compatible servers (`fastserve bench`): replays a trace over HTTP
and measures each request from the client side. Imports neither engine."""

from client.replay import Outcome, ReplayConfig, base_url, outcomes_for, replay, server_info

__all__ = ["Outcome", "ReplayConfig", "base_url", "outcomes_for", "replay", "server_info"]
