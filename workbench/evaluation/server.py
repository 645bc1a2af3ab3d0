"""A minimal OpenAI-compatible chat endpoint (``POST /v1/chat/completions``) on loopback.

It serves a local model (or any ``responder`` function) so that the LLM judge and pair generation
can run fully offline, and so their HTTP clients are tested against a real server.

Example:
    >>> with serve(model_responder(model)) as url:
    ...     LLMJudge(base_url=url, model="local").ask("Say yes")
"""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["model_responder", "serve"]

Responder = Callable[[list[dict[str, str]], int], str]


def model_responder(model: Any) -> Responder:
    """Answer with greedy generation from a workbench model (last user message, chat template)."""
    from workbench.generation import generate

    def respond(messages: list[dict[str, str]], max_tokens: int) -> str:
        system = next((m["content"] for m in messages if m.get("role") == "system"), None)
        user = [m["content"] for m in messages if m.get("role") == "user"][-1]
        return generate(model, [user], method="none", system_prompt=system, max_new_tokens=max_tokens).texts[0]

    return respond


def _handler(responder: Responder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # keep test and notebook output clean
            pass

        def _send(self, code: int, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            if not self.path.rstrip("/").endswith("/chat/completions"):
                self._send(404, {"error": {"message": f"unknown path {self.path}"}})
                return
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                messages = req["messages"]
                max_tokens = int(req.get("max_tokens") or 64)
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                self._send(400, {"error": {"message": f"bad request: {err}"}})
                return
            reply = responder(messages, max_tokens)
            self._send(200, {"object": "chat.completion", "model": req.get("model", "local"),
                             "choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": reply}}]})

    return Handler


@contextlib.contextmanager
def serve(responder: Responder, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run the endpoint in a background thread; yields its base URL (``http://host:port/v1``)."""
    server = ThreadingHTTPServer((host, port), _handler(responder))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
