"""The dashboard's rules without a server: which files ``/static/`` may serve and with which
content type (streams/dashboard.py), and the session cookie of the login
(tinhieu/webapi.py)."""

from __future__ import annotations

import os

import pytest

from streams import dashboard
from streams.dashboard import CONTENT_TYPES, content_type, etag, resolve_static
from tinhieu.webapi import (
    AuthFailures,
    request_authorized,
    session_ok,
    session_value,
    token_ok,
    too_many_failures,
)


@pytest.fixture
def web(tmp_path):
    root = tmp_path / "web"
    (root / "img").mkdir(parents=True)
    for name in ("index.html", "app.js", "style.css", "i18n.js", "img/logo.svg", "notes.txt",
                 ".gitignore", "package.json", "package-lock.json"):
        (root / name).write_text("x")
    (root / "node_modules" / "lib").mkdir(parents=True)
    (root / "node_modules" / "lib" / "lib.js").write_text("x")
    (tmp_path / "secret.js").write_text("outside")
    (root / "escape.js").symlink_to(tmp_path / "secret.js")
    (root / "nm.js").symlink_to(root / "node_modules" / "lib" / "lib.js")
    return root


@pytest.mark.parametrize("name", ["app.js", "index.html", "style.css", "img/logo.svg"])
def test_files_of_web_are_served(web, name) -> None:
    assert resolve_static(web, name) == (web / name).resolve()


@pytest.mark.parametrize(
    "name",
    [
        "",
        "../secret.js",
        "img/../../secret.js",
        "img/../app.js",  # a `..` anywhere is refused, even one that stays inside
        "./app.js",
        "/etc/passwd",
        "//etc/passwd",
        "..\\secret.js",
        "app.js\x00.css",
        ".gitignore",
        "img/.hidden.js",
        "node_modules/lib/lib.js",
        "package.json",
        "package-lock.json",
        "notes.txt",  # no known content type
        "missing.js",
        "img",  # a directory
        "escape.js",  # a symbolic link out of web/
        "nm.js",  # a symbolic link into node_modules
        "a/" * 120 + "app.js",  # too long
    ],
)
def test_everything_else_is_refused(web, name) -> None:
    assert resolve_static(web, name) is None


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("index.html", "text/html; charset=utf-8"),
        ("app.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("img/logo.svg", "image/svg+xml"),
    ],
)
def test_content_types(web, name, expected) -> None:
    assert content_type(resolve_static(web, name)) == expected


def test_every_served_suffix_has_a_type_with_a_charset_when_text() -> None:
    for suffix, ctype in CONTENT_TYPES.items():
        assert suffix.startswith(".")
        if ctype.startswith("text/"):
            assert ctype.endswith("charset=utf-8"), suffix


def test_etag_changes_with_the_file(web) -> None:
    path = web / "app.js"
    first = etag(path)
    path.write_text("changed")
    os.utime(path, ns=(1, 1))
    assert etag(path) != first and etag(path).startswith('W/"')


def test_the_project_pages_resolve_and_the_library_is_named() -> None:
    for name in ("index.html", "login.html", "app.js", "i18n.js", "style.css"):
        assert resolve_static(dashboard.WEB_DIR, name) is not None, name
    form = dashboard.login_page()
    assert 'class="error"' not in form and 'name="token"' in form
    assert "Wrong" in dashboard.login_page("Wrong token")
    assert dashboard.vendor_path("../package.json") is None
    assert dashboard.vendor_path("fancy-canvas.js") is None
    page = dashboard.install_page(["lightweight-charts.js"])
    assert "npm ci --prefix web" in page and "lightweight-charts.js" in page


def test_session_cookie_is_not_the_token() -> None:
    value = session_value("s3cret")
    assert "s3cret" not in value and len(value) == 64
    assert session_value("s3cret") == value and session_value("other") != value
    assert session_ok(value, "s3cret")
    assert not session_ok("s3cret", "s3cret")  # the token itself is no cookie
    assert not session_ok(None, "s3cret") and not session_ok("", "s3cret")
    assert not session_ok(session_value("old"), "s3cret")  # a changed token ends sessions
    assert session_ok(None, None)  # no token: open


def test_request_authorized_by_header_or_cookie() -> None:
    cookie = session_value("tok")
    assert request_authorized("Bearer tok", None, "tok")
    assert request_authorized(None, cookie, "tok")
    assert not request_authorized("Bearer nope", "nope", "tok")
    assert not request_authorized(None, None, "tok")
    assert request_authorized(None, None, None)
    assert token_ok("Bearer tok", "tok")


def test_a_missing_library_is_named_with_the_install_command(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(dashboard, "NODE_MODULES", tmp_path / "node_modules")
    assert dashboard.vendor_missing() == ["lightweight-charts.js"]
    assert dashboard.vendor_path("lightweight-charts.js") is None
    monkeypatch.undo()
    assert dashboard.vendor_missing() == []  # make test ran npm ci


def test_wrong_tokens_are_limited_per_address() -> None:
    failures = AuthFailures(3)
    for _ in range(3):
        assert failures.retry_after("10.0.0.1") is None
        failures.failed("10.0.0.1")
    wait = failures.retry_after("10.0.0.1")
    assert wait is not None and 1 <= wait <= 60
    assert failures.retry_after("10.0.0.2") is None  # another address is not held back
    assert failures.retry_after(None) is None  # an unknown peer has its own count
    unlimited = AuthFailures(0)
    for _ in range(100):
        unlimited.failed("10.0.0.1")
    assert unlimited.retry_after("10.0.0.1") is None
    error = too_many_failures(wait)
    assert error.status == 429 and error.body()["retry_after_s"] == wait
    assert "web_auth_failures_per_minute" in error.detail
