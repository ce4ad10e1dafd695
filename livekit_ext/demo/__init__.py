"""The offline demo: a realtime model and a parallel STT over a loopback server."""
