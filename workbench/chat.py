"""Chat-completion transport: an OpenAI-compatible HTTP endpoint or an in-process responder.

:func:`chat_completion` is the one HTTP call (``POST {base_url}/chat/completions``, timeouts, retries
with exponential backoff on 5xx/429 and connection errors, clear errors otherwise). :class:`ChatClient`
binds it to an endpoint; :class:`ResponderClient` answers in-process with any
``responder(messages, max_tokens) -> str`` such as :func:`workbench.evaluation.server.model_responder`.
Both offer ``complete(messages, max_tokens=...)``.

Example:
    >>> client = ChatClient("http://127.0.0.1:8000/v1", "local")
    >>> client.complete([{"role": "user", "content": "Say yes"}], max_tokens=4)
    'Yes'
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

__all__ = ["ChatBackend", "ChatClient", "ChatError", "ResponderClient", "chat_completion"]

Message = dict[str, str]


class ChatError(RuntimeError):
    """The chat endpoint failed or answered something that is not a chat completion."""


class ChatBackend(Protocol):
    """Anything that turns chat messages into one reply."""

    def complete(self, messages: Sequence[Message], max_tokens: int = ...) -> str: ...


def chat_completion(
    base_url: str,
    model: str,
    messages: Sequence[Message],
    *,
    api_key: str | None = None,
    max_tokens: int = 256,
    temperature: float = 0.0,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 0.5,
) -> str:
    """One chat completion from an OpenAI-compatible endpoint; returns ``choices[0].message.content``.

    Retries ``retries`` times (sleeping ``backoff * 2**attempt``) on HTTP 5xx/429, timeouts and
    connection errors; any other HTTP error or a reply without a string content raises :class:`ChatError`.

    Example:
        >>> chat_completion("http://127.0.0.1:8000/v1", "local", [{"role": "user", "content": "Hi"}])
    """
    url = base_url.rstrip("/")
    body = json.dumps({"model": model, "temperature": temperature, "max_tokens": int(max_tokens),
                       "messages": list(messages)}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {api_key}"} if api_key else {})}
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(f"{url}/chat/completions", data=body, headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
            reply = payload["choices"][0]["message"]["content"]
            if not isinstance(reply, str):
                raise TypeError("content is not a string")
            return reply
        except urllib.error.HTTPError as err:
            if err.code < 500 and err.code != 429:
                raise ChatError(f"Chat endpoint {url} refused the request: HTTP {err.code} {err.reason}. "
                                "Check the model name and API key.") from None
            last = err
        except (KeyError, IndexError, TypeError, json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ChatError(f"Chat endpoint {url} answered without choices[0].message.content "
                            f"({type(err).__name__}: {err}); is it OpenAI-compatible?") from None
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            last = err
        if attempt < retries:
            time.sleep(backoff * 2**attempt)
    raise ChatError(f"Chat endpoint {url} failed after {retries + 1} tries: {last}. Is the server running?")


@dataclass(frozen=True)
class ChatClient:
    """An OpenAI-compatible endpoint (``base_url`` such as ``http://127.0.0.1:8000/v1``) and model name.

    Example:
        >>> ChatClient("http://127.0.0.1:8000/v1", "local", temperature=0.7).complete(
        ...     [{"role": "user", "content": "Write one sentence."}], max_tokens=64)
    """

    base_url: str
    model: str
    api_key: str | None = None
    temperature: float = 0.7
    timeout: float = 120.0
    retries: int = 3
    backoff: float = 0.5

    def complete(self, messages: Sequence[Message], max_tokens: int = 256) -> str:
        return chat_completion(self.base_url, self.model, messages, api_key=self.api_key, max_tokens=max_tokens,
                               temperature=self.temperature, timeout=self.timeout, retries=self.retries,
                               backoff=self.backoff)


@dataclass(frozen=True)
class ResponderClient:
    """Answer in-process with ``responder(messages, max_tokens) -> str`` (no HTTP).

    Example:
        >>> from workbench.evaluation.server import model_responder
        >>> ResponderClient(model_responder(model)).complete([{"role": "user", "content": "Hi"}], max_tokens=8)
    """

    responder: Callable[[list[Message], int], str]

    def complete(self, messages: Sequence[Message], max_tokens: int = 256) -> str:
        reply = self.responder(list(messages), int(max_tokens))
        if not isinstance(reply, str):
            raise ChatError(f"The responder returned a {type(reply).__name__}, not the reply text.")
        return reply
