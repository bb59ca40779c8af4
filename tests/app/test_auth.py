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
    for name in ("SDPT_AUTH", "SDPT_USERS_FILE", "SDPT_ADMIN", "SPACE_ID", "OAUTH_CLIENT_ID", "SDPT_HOST",
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
    assert resolve(parser.parse_args(["--data-dir", str(tmp_path)])).sign_in == "oauth"


def test_serving_beyond_loopback_without_sign_in_warns_in_the_log_and_on_the_page(tmp_path, ui_models, caplog):
    from app.server import build_app, launch_options
    from app.ui.layout import EXPOSED_WARNING
    from tests.app.conftest import make_settings

    settings = make_settings(tmp_path / "data")
    settings.host = "0.0.0.0"
    demo, _context, _worker = build_app(settings, models=ui_models)
    with caplog.at_level(logging.WARNING, logger="app.server"):
        options = launch_options(settings)
    assert "auth" not in options and "without sign-in" in caplog.text
    shown = [b.value for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert shown == [f"**Warning:** {EXPOSED_WARNING}"]

    settings.users = auth.parse_pairs(["alice:pw"], "test")
    demo, _context, _worker = build_app(settings, models=ui_models)
    assert not [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "exposed-warning"]
    assert callable(launch_options(settings)["auth"])
