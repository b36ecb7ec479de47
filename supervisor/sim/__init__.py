"""The upstream simulator, its real sample payloads, and the scripted demo."""
