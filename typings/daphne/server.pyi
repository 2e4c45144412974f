from typing import Any

class Server:
    create_application: Any
    def __getattr__(self, name: str) -> Any: ...
