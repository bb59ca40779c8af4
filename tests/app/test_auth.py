"""Sign-in configuration: users from --auth, SDPT_AUTH and a users file of scrypt hashes, the password check,
the mode the settings pick, and the warning when the app is served beyond loopback without sign-in."""
import logging

import pytest

from app import auth
from app.settings import build_parser, resolve


def test_password_hashes_verify_and_keep_no_password():
    stored = auth.hash_password("s3cret pass")
    assert stored.startswith("scrypt$") and "s3cret" not in stored
    assert auth.verify_password("s3cret pass", stored)
    assert not auth.verify_password("s3cret pas", stored)
    assert not auth.verify_password("s3cret pass", "md5$abc")  # unknown schemes never pass
    assert auth.hash_password("same") != auth.hash_password("same")  # salted


def test_users_come_from_flags_environment_and_a_file(tmp_path):
    users_file = tmp_path / "users.txt"
    users_file.write_text(f"# team\ncarol:{auth.hash_password('pw3')}\n\n")
    users = auth.collect_users(["alice:pw1"], "bob:pw2, dave:pw:with:colons", users_file)
    assert sorted(users) == ["alice", "bob", "carol", "dave"]
    check = auth.password_checker(users)
    assert check("alice", "pw1") and check("bob", "pw2") and check("carol", "pw3")
    assert check("dave", "pw:with:colons")
    assert not check("alice", "pw2") and not check("eve", "pw1") and not check("", "")


@pytest.mark.parametrize("flags, env, line, message", [
    (["alice"], None, None, "--auth: 'alice' is not USER:PASSWORD"),
    ([":pw"], None, None, "user name '' must be"),
    (None, "bob:", None, "SDPT_AUTH: 'bob' is not USER:PASSWORD"),
    (None, None, "carol:plain-password", "line 1: expected NAME:scrypt$"),
])
def test_malformed_users_are_refused_with_where_and_how(tmp_path, flags, env, line, message):
    users_file = None
    if line:
        users_file = tmp_path / "users.txt"
        users_file.write_text(line + "\n")
    with pytest.raises(auth.SignInError) as refused:
        auth.collect_users(flags, env, users_file)
    assert message in str(refused.value)


def test_settings_pick_the_sign_in_mode(tmp_path, monkeypatch):
    for name in ("SDPT_AUTH", "SDPT_USERS_FILE", "SDPT_ADMIN", "SYSTEM", "SPACE_ID", "OAUTH_CLIENT_ID", "SDPT_HOST",
                 "GRADIO_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    parser = build_parser("test")
    single = resolve(parser.parse_args(["--data-dir", str(tmp_path)]))
    assert single.sign_in == "none" and single.admin_user == "admin" and not single.exposed_without_sign_in
    monkeypatch.setenv("SDPT_AUTH", "alice:pw1,bob:pw2")
    team = resolve(parser.parse_args(["--data-dir", str(tmp_path), "--admin", "alice", "--host", "0.0.0.0"]))
    assert team.sign_in == "password" and sorted(team.users) == ["alice", "bob"] and team.admin_user == "alice"
    assert not team.exposed_without_sign_in
    monkeypatch.setenv("SPACE_ID", "someone/sdpt")
    monkeypatch.setenv("OAUTH_CLIENT_ID", "client")
    assert resolve(parser.parse_args(["--data-dir", str(tmp_path)])).sign_in == "password"  # not a Space
    monkeypatch.setenv("SYSTEM", "spaces")
    assert resolve(parser.parse_args(["--data-dir", str(tmp_path)])).sign_in == "oauth"


def test_serving_beyond_loopback_without_sign_in_warns_in_the_log_and_on_the_page(tmp_path, ui_models, caplog):
    from app.server import build_app, launch_options
    from app.ui.page_text import EXPOSED_WARNING
    from tests.app.conftest import make_settings

    settings = make_settings(tmp_path / "data")
    settings.host = "0.0.0.0"
    demo, context, _worker = build_app(settings, models=ui_models)
    with caplog.at_level(logging.WARNING, logger="app.server"):
        options = launch_options(settings, context)
    assert "auth" not in options and "without sign-in" in caplog.text
    shown = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert shown == [f"**Warning:** {EXPOSED_WARNING}"]

    settings.users = auth.parse_pairs(["alice:pw"], "test")
    demo, context, _worker = build_app(settings, models=ui_models)
    assert not [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert callable(launch_options(settings, context)["auth"])


def test_the_user_name_of_a_request_password_sign_in_and_hugging_face_oauth():
    """What gradio hands a handler: request.username after a password sign-in; on a Space the OAuth session that
    gradio's Hugging Face login stores (gradio's own Request objects over starlette's, no stand-ins of ours)."""
    import time

    import gradio as gr
    from starlette.requests import Request

    def request(session=None, username=None):
        scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
        if session is not None:
            scope["session"] = session  # what starlette's SessionMiddleware puts there
        return gr.Request(Request(scope), username=username)

    assert auth.user_name(request(username="alice"), oauth=False) == "alice"
    assert auth.user_name(request(), oauth=False) is None
    assert auth.user_name(None, oauth=True) is None
    signed_in = {"oauth_info": {"userinfo": {"preferred_username": "hf-alice"}, "expires_at": time.time() + 600}}
    assert auth.user_name(request(session=signed_in), oauth=True) == "hf-alice"
    assert auth.user_name(request(session=signed_in), oauth=False) is None  # OAuth counts only on a Space
    expired = {"oauth_info": {"userinfo": {"preferred_username": "hf-alice"}, "expires_at": time.time() - 1}}
    assert auth.user_name(request(session=expired), oauth=True) is None
    assert auth.user_name(request(), oauth=True) is None  # no session middleware: nobody signed in


def test_on_a_space_the_page_has_the_hugging_face_login_button(tmp_path, ui_models, monkeypatch):
    import gradio as gr

    from app.server import build_app
    from app.settings import build_parser, resolve

    # what a Space with hf_oauth: true sets (gradio's button reads SPACE_ID too)
    from gradio import oauth

    space = {"SYSTEM": "spaces", "SPACE_ID": "team/sdpt", "OAUTH_CLIENT_ID": "client-id",
             "OAUTH_CLIENT_SECRET": "secret", "OAUTH_SCOPES": "openid profile",
             "OPENID_PROVIDER_URL": "https://huggingface.co"}
    for name, value in space.items():
        monkeypatch.setenv(name, value)
        if hasattr(oauth, name):  # gradio reads these once, when gradio.oauth is imported
            monkeypatch.setattr(oauth, name, value)
    settings = resolve(build_parser("test").parse_args(["--data-dir", str(tmp_path / "data"), "--no-worker"]))
    assert settings.sign_in == "oauth"
    demo, context, _worker = build_app(settings, models=ui_models)
    assert any(isinstance(block, gr.LoginButton) for block in demo.blocks.values())
    assert context.signed_in_user() is None  # nobody is the user until they sign in with Hugging Face


def test_the_21st_failed_sign_in_within_a_minute_is_refused_even_with_the_right_password():
    from fastapi import HTTPException

    from app.auth import SignInLimiter, hash_password, password_checker

    now = [1000.0]
    check = password_checker({"alice": hash_password("right")}, SignInLimiter(20, 60.0, clock=lambda: now[0]))
    for _ in range(20):
        assert check("alice", "wrong") is False
        now[0] += 1.0
    with pytest.raises(HTTPException) as refused:
        check("alice", "right")
    assert refused.value.status_code == 429 and "try again in 40 s" in refused.value.detail
    assert check("bob", "anything") is False  # other names are not locked out by alice's failures
    now[0] += 40.0  # the oldest failure has left the window
    assert check("alice", "right") is True
