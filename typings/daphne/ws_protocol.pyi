from typing import Any

class WebSocketProtocol:
    serverClose: Any
    gateway_close_codes: bool
    def __getattr__(self, name: str) -> Any: ...
