"""A small OpenAI-compatible HTTP server on 127.0.0.1 for offline tests of the API backends:
it records every request body (and the Authorization headers), answers chat and completion
requests with canned text, can refuse the first requests with given status codes, and
counts requests in flight.  `serving()` starts servers and stops them after the test.

A server can also misbehave (`mode`): "hang" accepts every request after the first
`answer_first` and never answers (until it is shut down); "garbage" answers 200 with a body
that is not JSON, "html" with a web page, "no_choices" with an empty choices list, and
"echo" refuses with HTTP 400 echoing the request's key and URL, as some servers do."""

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

    def __init__(self, failures: list[int], mode: str = "ok", answer_first: int = 0):
        super().__init__(("127.0.0.1", 0), Handler)
        self.failures = list(failures)  # status codes answered before any success
        self.mode = mode
        self.answer_first = answer_first  # "hang": requests answered before it hangs
        self.released = threading.Event()  # set at shutdown: hanging handlers return
        self.requests: list[dict] = []
        self.arrivals: list[float] = []  # time.monotonic() of each request
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

    def _send(self, status: int, body: dict | bytes, kind: str = "application/json") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", kind)
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
            srv.arrivals.append(time.monotonic())
            fail = srv.failures.pop(0) if srv.failures else None
            nth = len(srv.requests) - 1  # this request's index
            srv.inflight += 1
            srv.max_inflight = max(srv.max_inflight, srv.inflight)
        try:
            if fail:
                self._send(fail, {"error": {"message": "slow down", "type": "rate_limit"}})
                return
            if srv.mode == "hang" and nth >= srv.answer_first:
                srv.released.wait(60)  # the connection stays open, unanswered
                return
            if srv.mode == "garbage":
                self._send(200, b"<<not json at all")
                return
            if srv.mode == "html":
                self._send(200, b"<html><body><h1>Welcome to nginx!</h1></body></html>",
                           "text/html")
                return
            if srv.mode == "echo":
                msg = (f"Invalid key {self.headers.get('Authorization', '')} for "
                       f"http://{self.headers.get('Host')}{self.path}?api_key=ECHOED")
                self._send(400, {"error": {"message": msg, "type": "invalid_request"}})
                return
            time.sleep(0.05)  # long enough for concurrent requests to overlap
            if "messages" in body:  # chat (a base URL with a query string puts it mid-path)
                prompt = body["messages"][-1]["content"]
            else:
                prompt = body["prompt"]
            text = next((a for k, a in ANSWERS.items() if k in prompt), "I cannot tell.")
            if "messages" in body:  # chat (a base URL with a query string puts it mid-path)
                choice = {"index": 0, "finish_reason": "stop",
                          "message": {"role": "assistant", "content": text}}
                obj = "chat.completion"
            else:
                choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                obj = "text_completion"
            self._send(200, {"id": "x", "object": obj, "created": 0, "model": body["model"],
                             "choices": [] if srv.mode == "no_choices" else [choice],
                             "usage": {"prompt_tokens": 1, "completion_tokens": 1,
                                       "total_tokens": 2}})
        finally:
            with srv.lock:
                srv.inflight -= 1


@contextlib.contextmanager
def serving():
    """Yields start(failures=(), mode="ok", answer_first=0) -> a running FakeOpenAI; every
    server started is shut down on exit."""
    servers: list[FakeOpenAI] = []

    def start(failures=(), mode: str = "ok", answer_first: int = 0) -> FakeOpenAI:
        srv = FakeOpenAI(list(failures), mode, answer_first)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv

    try:
        yield start
    finally:
        for srv in servers:
            srv.released.set()
            srv.shutdown()
            srv.server_close()
