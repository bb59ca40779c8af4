"""The HTTP edge in front of gradio's routes: the per-user check on file URLs, uploads granted to their uploader, the
per-address limit on failed sign-ins, the sign-in page's "try again in N s", and API calls with more values than
the endpoint takes (gradio would drop the extra ones silently and run the call).

An ASGI middleware, installed as the innermost one (`launch(app_kwargs={"middleware": ...})`), so it sees gradio's
requests and responses uncompressed, after the session middleware that OAuth sign-in adds.
"""
from __future__ import annotations

import json
import logging
import re
from http.cookies import SimpleCookie, CookieError

from app.auth import SignInLimiter, TooManyAttempts
from app.served_files import ServedFiles

logger = logging.getLogger(__name__)

FILE_ROUTE = "/gradio_api/file="
UPLOAD_ROUTE = "/gradio_api/upload"
API_CALL = re.compile(r"/gradio_api/(?:run|call)/([^/]+)/?$")
MAX_API_BODY = 32 * 2**20  # an API call's JSON (5,000 boxes fit in a few hundred kB)
NOT_YOURS = (b"This file is not available to you: it was made for another user, or it expired. "
             b"Open the image or export again in the app.")

# Gradio's sign-in form shows one fixed text for every refusal; this shows the server's own answer above it when
# sign-in is paused ("too many failed sign-ins; try again in N s").
SIGN_IN_SCRIPT = b"""<script>
(() => {
  const fetchFirst = window.fetch;
  window.fetch = async (...args) => {
    const response = await fetchFirst(...args);
    try {
      const url = new URL(String(args[0] && args[0].url || args[0]), location.href);
      if (/\\/login\\/?$/.test(url.pathname) && response.status === 429) {
        const detail = (await response.clone().json()).detail;
        let note = document.getElementById("sign-in-wait");
        if (!note) {
          note = document.createElement("div");
          note.id = "sign-in-wait";
          note.setAttribute("role", "alert");
          note.style.cssText = "position:fixed;top:12px;left:50%;transform:translateX(-50%);z-index:1000;"
            + "padding:10px 16px;border-radius:8px;background:#fde8e8;color:#7f1d1d;font:15px sans-serif";
          document.body.appendChild(note);
        }
        note.textContent = "Sign-in paused: " + detail;
      }
    } catch (error) { /* not a JSON answer: gradio's own message stands */ }
    return response;
  };
})();
</script>"""


class HttpGuard:
    """ASGI middleware. `sign_in` is "none", "password" or "oauth" (app/settings.py)."""

    def __init__(self, app, files: ServedFiles, sign_in: str, address_limiter: SignInLimiter | None = None):
        self.app, self.files, self.sign_in = app, files, sign_in
        # a shared address (an office behind one NAT) makes more honest mistakes than one name does
        self.address_limiter = address_limiter or SignInLimiter(max_failures=100)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        self.files.sweep_if_due()
        path, method = scope.get("path", ""), scope.get("method", "GET")
        call = API_CALL.search(path) if method == "POST" else None
        if call is not None:
            return await self._api_call(scope, receive, send, call.group(1))
        if self.sign_in == "none":  # one user: nothing to keep apart
            return await self.app(scope, receive, send)
        if FILE_ROUTE in path and method in ("GET", "HEAD"):
            return await self._file(scope, receive, send, path.split(FILE_ROUTE, 1)[1])
        if path.endswith(UPLOAD_ROUTE) and method == "POST":
            return await self._upload(scope, receive, send)
        if self.sign_in == "password" and method == "POST" and path.rstrip("/").endswith("/login"):
            return await self._sign_in(scope, receive, send)
        if method == "GET" and FILE_ROUTE not in path and "/gradio_api/" not in path:
            return await self._page(scope, receive, send)
        return await self.app(scope, receive, send)

    async def _file(self, scope, receive, send, requested: str):
        from gradio.utils import abspath

        if not requested.startswith(("http://", "https://")) and not self.files.may_read(abspath(requested),
                                                                                           self._user(scope)):
            logger.info("refused a file URL to %r: not granted", self._user(scope))
            return await _plain(send, 404, NOT_YOURS)
        return await self.app(scope, receive, send)

    async def _api_call(self, scope, receive, send, api_name: str):
        """Refuse a list of values longer than the endpoint's inputs; pass everything else on unchanged."""
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > MAX_API_BODY:
                return await _json(send, 413, f"the request is over {MAX_API_BODY // 2**20} MB; send less at once")
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        wanted = self._input_count(scope, api_name)
        try:
            data = json.loads(body)["data"]
        except (ValueError, TypeError, KeyError):
            data = None
        if wanted is not None and not isinstance(data, list):
            return await _json(send, 400, f"/{api_name} needs a JSON body {{\"data\": [...]}} with its {wanted} "
                                          "value(s) in order (see the API page linked at the foot of the app)")
        if wanted is not None and len(data) > wanted:
            logger.info("/%s refused: %d values for %d inputs", api_name, len(data), wanted)
            return await _json(send, 400, f"/{api_name} takes {wanted} value{'s' * (wanted != 1)}, got "
                                          f"{len(data)}; remove the extra ones")
        sent = [False]

        async def replay():
            if not sent[0]:
                sent[0] = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()
        return await self.app(scope, replay, send)

    @staticmethod
    def _input_count(scope, api_name: str) -> int | None:
        app = scope.get("app")
        try:
            fns = app.get_blocks().fns.values()
        except Exception:  # noqa: BLE001 - no blocks yet: let gradio answer
            return None
        for fn in fns:
            if getattr(fn, "api_name", None) == api_name:
                return len(fn.inputs)
        return None

    async def _upload(self, scope, receive, send):
        """Pass the upload through; grant the stored paths gradio answers with to the uploader."""
        user, status, body = self._user(scope), [0], []

        async def watching(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body") and status[0] == 200 and user:
                    try:
                        for stored in json.loads(b"".join(body)):
                            self.files.grant_upload(str(stored), user)
                    except (ValueError, TypeError):
                        logger.warning("an upload's answer was not a list of paths; nothing granted")
            await send(message)
        return await self.app(scope, receive, watching)

    async def _sign_in(self, scope, receive, send):
        address = "address:" + ((scope.get("client") or ("unknown",))[0])
        try:
            self.address_limiter.check(address)
        except TooManyAttempts as error:
            logger.info("sign-in from %s refused: %s", address, error)
            body = json.dumps({"detail": f"{error} (too many from this address)"}).encode()
            return await _plain(send, 429, body, "application/json")
        status = [0]

        async def watching(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                if status[0] == 400:  # a wrong password (429 is the per-name limit: not a new failure)
                    self.address_limiter.failed(address)
            await send(message)
        return await self.app(scope, receive, watching)

    async def _page(self, scope, receive, send):
        """HTML pages get the sign-in note script; everything else passes untouched."""
        start, chunks = [None], []

        async def rewriting(message):
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if not headers.get(b"content-type", b"").startswith(b"text/html"):
                    start[0] = False
                    return await send(message)
                start[0] = message
                return None
            if start[0] is False:
                return await send(message)
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return None
            page = b"".join(chunks).replace(b"</head>", SIGN_IN_SCRIPT + b"</head>", 1)
            headers = [(k, v) for k, v in start[0].get("headers", []) if k.lower() != b"content-length"]
            headers.append((b"content-length", str(len(page)).encode()))
            await send({**start[0], "headers": headers})
            await send({"type": "http.response.body", "body": page})
        return await self.app(scope, receive, rewriting)

    def _user(self, scope) -> str | None:
        """The signed-in user of a raw request, found as gradio finds it (its cookie, or the OAuth session)."""
        if self.sign_in == "oauth":
            from gradio import oauth as gradio_oauth

            info = gradio_oauth._get_valid_oauth_info_from_session(scope.get("session") or {})
            return str(info["userinfo"].get("preferred_username") or "") or None if info else None
        app = scope.get("app")
        cookie_id = getattr(app, "cookie_id", None)
        if cookie_id is None:
            return None
        cookies = SimpleCookie()
        for name, value in scope.get("headers") or []:
            if name == b"cookie":
                try:
                    cookies.load(value.decode("latin-1"))
                except CookieError:
                    continue  # a malformed cookie header: no user from it
        for key in (f"access-token-{cookie_id}", f"access-token-unsecure-{cookie_id}"):
            if key in cookies:
                user = app.tokens.get(cookies[key].value)
                if user:
                    return user
        return None


async def _json(send, status: int, message: str) -> None:
    await _plain(send, status, json.dumps({"error": message}).encode(), "application/json")


async def _plain(send, status: int, body: bytes, kind: str = "text/plain; charset=utf-8") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind.encode()), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
