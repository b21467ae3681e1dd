"""SIP-like signaling for bargein: sans-IO core, aiohttp server, WebRTC gateway, CLI."""
