"""Loopback servers that speak the OpenAI Realtime and Gemini Live wire protocols.

Regression tests drive the real livekit plugins against them: no keys, no network.
"""

from ._loopback import Connection, LoopbackServer
from .gemini_server import GeminiLiveServer
from .openai_server import OpenAIRealtimeServer

__all__ = ["Connection", "GeminiLiveServer", "LoopbackServer", "OpenAIRealtimeServer"]
