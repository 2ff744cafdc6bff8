"""The dashboard page at ``/`` on every worker's web port (docs/DASHBOARD.md).

The page itself is static: ``web/index.html``, ``web/app.js`` (plain ES modules, no build
step), ``web/style.css``; it reads the REST API for the initial state and follows
``/api/v1/ws`` (falling back to ``/api/v1/stream``) for what happens next. The only
library, TradingView's ``lightweight-charts``, comes from npm (``web/package.json`` and its
lockfile, installed by ``npm ci --prefix web``, which ``make run`` and ``make test`` run) and
is served from ``web/node_modules`` as ``/vendor/lightweight-charts.js``.

Routes:

- ``GET /``: the page; with ``web_token`` set and no valid session cookie, the login form.
- ``POST /login`` (form field ``token``): right token -> the HttpOnly, SameSite=Strict
  session cookie and a redirect to ``/``; wrong token -> 401 and the form again.
- ``POST /logout``: clears the cookie.
- ``GET /static/{name}``: files of ``web/`` (never ``node_modules``, hidden files, other
  suffixes or anything outside ``web/``: :func:`resolve_static`).
- ``GET /vendor/{name}``: the library files named in ``VENDOR``.

The session cookie holds an HMAC of the token (``tinhieu.webapi.session_value``), never the
token; the API middleware of ``streams/api.py`` accepts it like the bearer header. Neither
the token nor the cookie is ever logged.
"""

from __future__ import annotations

import hmac
import logging
from pathlib import Path, PurePosixPath
from typing import Any

from aiohttp import web as aioweb
from faust.web import Request, View

from streams.app import app, auth_failures, settings
from tinhieu.webapi import SESSION_COOKIE, session_ok, session_value

log = logging.getLogger("tinhieu.dashboard")

WEB_DIR = Path(__file__).resolve().parents[1] / "web"
NODE_MODULES = WEB_DIR / "node_modules"
# URL name -> file under web/node_modules (the standalone build: one file, no imports).
VENDOR = {
    "lightweight-charts.js": (
        "lightweight-charts/dist/lightweight-charts.standalone.production.js"
    ),
}
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
MAX_STATIC_PATH = 200
MAX_LOGIN_BYTES = 4096
STATIC_CACHE = "no-cache"  # revalidated every time (ETag): an edit shows at once
VENDOR_CACHE = "public, max-age=86400"  # changes only with `npm ci`
INSTALL_HINT = "npm ci --prefix web"
_TOKEN = settings.web_token.get_secret_value() if settings.web_token is not None else None
# The page loads only its own files and talks only to this worker (REST, WebSocket, SSE).
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; form-action 'self'; "
        "base-uri 'none'"
    ),
}


def resolve_static(root: Path, name: str) -> Path | None:
    """The file of ``root`` that ``name`` (the URL path after ``/static/``) stands for, or
    ``None`` when it must not be served.

    Refused: an empty or over-long name, backslashes, NUL, absolute paths, ``..`` and hidden
    segments (``.gitignore``), ``node_modules`` and ``package*.json``, suffixes without a
    known content type, and anything that resolves (symbolic links included) outside
    ``root``. A name that passes but names no file is ``None`` too."""
    if not name or len(name) > MAX_STATIC_PATH or "\\" in name or "\x00" in name:
        return None
    segments = name.split("/")  # the raw segments: PurePosixPath would drop "." and ""
    if any(part in ("", ".", "..") or part.startswith(".") for part in segments):
        return None
    rel = PurePosixPath(name)
    if rel.parts[0] == "node_modules" or rel.name.startswith("package"):
        return None
    if rel.suffix.lower() not in CONTENT_TYPES:
        return None
    base = root.resolve()
    try:
        path = (base / rel).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    if not path.is_relative_to(base) or not path.is_file():
        return None
    if NODE_MODULES.name in path.relative_to(base).parts:
        return None
    return path


def content_type(path: Path) -> str:
    """The ``Content-Type`` of a file that :func:`resolve_static` accepted."""
    return CONTENT_TYPES[path.suffix.lower()]


def etag(path: Path) -> str:
    """A weak validator from the file's size and modification time."""
    stat = path.stat()
    return f'W/"{stat.st_size:x}-{stat.st_mtime_ns:x}"'


def vendor_path(name: str) -> Path | None:
    """The installed library file behind ``/vendor/{name}`` (``None``: unknown or missing)."""
    rel = VENDOR.get(name)
    if rel is None:
        return None
    path = NODE_MODULES / rel
    return path if path.is_file() else None


def vendor_missing() -> list[str]:
    """The library files the page needs that are not installed."""
    return [name for name in VENDOR if vendor_path(name) is None]


def _file_response(request: Any, path: Path, cache: str) -> aioweb.StreamResponse:
    tag = etag(path)
    headers = {"Cache-Control": cache, "ETag": tag, **SECURITY_HEADERS}
    if request.headers.get("If-None-Match") == tag:
        return aioweb.Response(status=304, headers=headers)
    return aioweb.Response(
        body=path.read_bytes(), headers={**headers, "Content-Type": content_type(path)}
    )


def _html(text: str, status: int = 200, **headers: str) -> aioweb.Response:
    return aioweb.Response(
        text=text,
        status=status,
        content_type="text/html",
        charset="utf-8",
        headers={"Cache-Control": "no-store", **SECURITY_HEADERS, **headers},
    )


def login_page(error: str = "") -> str:
    """``web/login.html`` with the message of a failed attempt (fixed texts only)."""
    page = (WEB_DIR / "login.html").read_text(encoding="utf-8")
    note = f'<p class="error" role="alert">{error}</p>' if error else ""
    return page.replace("<!--error-->", note)


def install_page(missing: list[str]) -> str:
    """What to do when ``web/node_modules`` is missing: the worker runs, the page says so."""
    files = ", ".join(missing)
    return (
        '<!doctype html><html lang="vi"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<title>tinhieu: cài thư viện giao diện</title>"
        '<body style="font-family:sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem">'
        "<h1>Chưa cài thư viện của bảng điều khiển</h1>"
        f"<p>Thiếu <code>{files}</code> trong <code>web/node_modules</code>. Chạy "
        f"<code>{INSTALL_HINT}</code> (hoặc <code>make run</code>, tự cài) trong thư mục "
        "dự án rồi tải lại trang. Worker vẫn chạy; API tại <code>/api/v1/</code>.</p>"
        "<h2>Dashboard libraries are not installed</h2>"
        f"<p>Missing <code>{files}</code> in <code>web/node_modules</code>. Run "
        f"<code>{INSTALL_HINT}</code> (or <code>make run</code>, which does it) in the "
        "project directory, then reload. The worker is running; the API is at "
        "<code>/api/v1/</code>.</p></body></html>"
    )


def _see_other(location: str = "/") -> aioweb.Response:
    return aioweb.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _signed_in(request: Any) -> bool:
    return session_ok(request.cookies.get(SESSION_COOKIE), _TOKEN)


def _session_cookie(response: aioweb.StreamResponse, request: Any, value: str,
                    max_age: int | None = None) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        value,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=bool(request.secure),
        max_age=max_age,
    )


@app.page("/")
class DashboardView(View):
    """The page (or the login form, or how to install the library)."""

    async def get(self, request: Request) -> Any:
        if _TOKEN is not None and not _signed_in(request):
            return _html(login_page())
        missing = vendor_missing()
        if missing:
            return _html(install_page(missing), status=503)
        page = (WEB_DIR / "index.html").read_text(encoding="utf-8")
        if _TOKEN is not None:
            page = page.replace('data-auth="off"', 'data-auth="on"', 1)
        return _html(page)


@app.page("/login")
class LoginView(View):
    """``POST /login`` with the form field ``token``."""

    async def get(self, request: Request) -> Any:
        return _see_other()

    async def post(self, request: Request) -> Any:
        if _TOKEN is None:
            return _see_other()
        length = request.content_length
        if length is None or length > MAX_LOGIN_BYTES:
            return _html(login_page("Yêu cầu không hợp lệ / Invalid request"), status=400)
        wait = auth_failures.retry_after(request.remote)
        if wait is not None:
            log.warning("dashboard login refused from %s: too many wrong tokens", request.remote)
            return _html(
                login_page(
                    f"Sai mã quá nhiều lần: thử lại sau {wait} giây. / Too many wrong tokens: "
                    f"try again in {wait} s."
                ),
                status=429, **{"Retry-After": str(wait)},
            )
        form = await request.post()
        given = form.get("token")
        if not isinstance(given, str) or not hmac.compare_digest(
            given.strip().encode(), _TOKEN.encode()
        ):
            auth_failures.failed(request.remote)
            log.warning("dashboard login refused from %s: wrong token", request.remote)
            return _html(
                login_page(
                    "Sai mã truy cập (TINHIEU_WEB_TOKEN của worker). / Wrong token: use the "
                    "worker's TINHIEU_WEB_TOKEN."
                ),
                status=401,
            )
        response = _see_other()
        _session_cookie(response, request, session_value(_TOKEN))
        return response


@app.page("/logout")
class LogoutView(View):
    async def post(self, request: Request) -> Any:
        response = _see_other()
        _session_cookie(response, request, "", max_age=0)
        return response


@app.page("/static/{name:.+}")
class StaticView(View):
    """Files of ``web/`` (``resolve_static``); anything refused is a plain 404."""

    async def get(self, request: Request, name: str) -> Any:
        path = resolve_static(WEB_DIR, name)
        if path is None:
            return aioweb.Response(status=404, text="not found", headers=SECURITY_HEADERS)
        return _file_response(request, path, STATIC_CACHE)


@app.page("/vendor/{name}")
class VendorView(View):
    """The JavaScript libraries installed from npm (``VENDOR``)."""

    async def get(self, request: Request, name: str) -> Any:
        path = vendor_path(name)
        if path is None:
            text = f"not found; if this is a library of the page, run: {INSTALL_HINT}"
            return aioweb.Response(status=404, text=text, headers=SECURITY_HEADERS)
        return _file_response(request, path, VENDOR_CACHE)


if vendor_missing():
    log.warning(
        "dashboard: %s missing in %s; the page at / will say so. Run: %s",
        ", ".join(vendor_missing()), NODE_MODULES, INSTALL_HINT,
    )
