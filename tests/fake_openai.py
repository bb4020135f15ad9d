"""A small OpenAI-compatible HTTP server on 127.0.0.1 for offline tests of the API backends:
it records every request body (and the Authorization headers), answers chat and completion
requests with canned text, can refuse the first requests with given status codes, and
counts requests in flight.  `serving()` starts servers and stops them after the test."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# Answer = the first of these whose key is in the prompt (else "I cannot tell.")
ANSWERS = {
    "depression": "Yes, the poster suffers from depression. Reasoning: The post is bleak."
                  "\n\nA second paragraph that must not be cut.",
    "stress cause": "This post shows the stress cause related to work. Reasoning: A boss.",
}


class FakeOpenAI(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, failures: list[int]):
        super().__init__(("127.0.0.1", 0), Handler)
        self.failures = list(failures)  # status codes answered before any success
        self.requests: list[dict] = []
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        self.inflight = 0
        self.max_inflight = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class Handler(BaseHTTPRequestHandler):
    server: FakeOpenAI

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status >= 400:
            self.send_header("retry-after-ms", "1")  # the client honours it: fast retries
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.auth.add(self.headers.get("Authorization", ""))
            srv.requests.append({"path": self.path, **body})
            fail = srv.failures.pop(0) if srv.failures else None
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            if fail:
                self._send(fail, {"error": {"message": "slow down", "type": "rate_limit"}})
                return
            time.sleep(0.05)  # long enough for concurrent requests to overlap
            if self.path.endswith("/chat/completions"):
                prompt = body["messages"][-1]["content"]
            else:
                prompt = body["prompt"]
            text = next((a for k, a in ANSWERS.items() if k in prompt), "I cannot tell.")
            if self.path.endswith("/chat/completions"):
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": text}}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                obj = "text_completion"
            self._send(200, {"id": "x", "object": obj, "created": 0, "model": body["model"],
                             "choices": [choice],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                       "total_tokens": 2}})
        finally:
            with srv.lock:
                srv.inflight -= 1


@contextlib.contextmanager
def serving():
    """Yields start(failures=()) -> a running FakeOpenAI; every server started is shut down
    on exit."""
    servers: list[FakeOpenAI] = []

    def start(failures=()) -> FakeOpenAI:
        srv = FakeOpenAI(list(failures))
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in servers:
            srv.shutdown()
            srv.server_close()
