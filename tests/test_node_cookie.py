"""The cookie: a random private file, refused when others can read it, as in Erlang."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from livekit.nodes import cookie
from livekit.nodes.cookie import cookie_for, cookie_path, get_cookie, read_cookie_file, set_cookie

posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX permission bits")


@pytest.fixture(autouse=True)
def livekit_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    home = tmp_path / "livekit-home"
    monkeypatch.setenv("LIVEKIT_HOME", str(home))
    cookie._reset()
    yield home
    cookie._reset()


def test_cookie_file_is_created_random_and_private_on_first_use(livekit_home: Path) -> None:
    value = get_cookie()
    path = livekit_home / "cookie"
    assert cookie_path() == path
    assert path.read_text() == value + "\n"
    assert len(value) >= 32
    if os.name != "nt":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(livekit_home.stat().st_mode) == 0o700


def test_cookie_file_is_read_again_not_replaced(livekit_home: Path) -> None:
    first = get_cookie()
    cookie._reset()
    assert get_cookie() == first


def test_two_homes_get_different_random_cookies(tmp_path: Path) -> None:
    assert read_cookie_file(tmp_path / "a" / "cookie") != read_cookie_file(
        tmp_path / "b" / "cookie"
    )


@posix_only
@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620])
def test_cookie_file_that_others_can_access_is_refused(livekit_home: Path, mode: int) -> None:
    path = livekit_home / "cookie"
    livekit_home.mkdir()
    path.write_text("shared-secret\n")
    path.chmod(mode)
    with pytest.raises(PermissionError) as caught:
        get_cookie()
    assert str(caught.value) == (
        f"the cookie file {path} must be accessible by its owner only, but its mode is "
        f"{mode:#o}; run: chmod 600 {path}"
    )


def test_empty_cookie_file_is_refused(livekit_home: Path) -> None:
    path = livekit_home / "cookie"
    livekit_home.mkdir()
    path.write_text("\n")
    path.chmod(0o600)
    with pytest.raises(ValueError, match="is empty; delete it to get a new random cookie"):
        get_cookie()


def test_set_cookie_replaces_this_interpreters_cookie_without_touching_the_file(
    livekit_home: Path,
) -> None:
    set_cookie("chosen")
    assert get_cookie() == "chosen"
    assert not (livekit_home / "cookie").exists()


def test_set_cookie_for_one_node_applies_to_that_node_only() -> None:
    set_cookie("mine")
    set_cookie("demo@elsewhere:4370", "theirs")
    assert cookie_for("demo@elsewhere:4370") == "theirs"
    assert cookie_for("other@elsewhere:4371") == "mine"


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        (("",), ValueError, "expected a non-empty cookie without whitespace, got an empty string"),
        (
            ("two words",),
            ValueError,
            "expected a non-empty cookie without whitespace, got a cookie containing whitespace",
        ),
        ((42,), TypeError, "expected the cookie as a str, got int"),
        (("demo", "cookie"), ValueError, "expected a node name like 'name@host', got 'demo'"),
    ],
)
def test_set_cookie_rejects_bad_values_without_echoing_the_secret(
    args: tuple[object, ...], error: type[Exception], message: str
) -> None:
    with pytest.raises(error) as caught:
        set_cookie(*args)  # type: ignore[arg-type]
    assert str(caught.value) == message


@posix_only
def test_a_cookie_file_that_is_a_symbolic_link_is_refused_unfollowed(livekit_home: Path) -> None:
    livekit_home.mkdir(mode=0o700)
    known = livekit_home / "known"
    known.write_text("a-cookie-someone-knows\n")
    known.chmod(0o600)  # owner and mode would pass: only the link gives it away
    (livekit_home / "cookie").symlink_to(known)
    with pytest.raises(PermissionError) as caught:
        get_cookie()
    assert str(caught.value) == (
        f"the cookie file {cookie_path()} is a symbolic link; livekit does not follow it "
        "(replace it with the file itself)"
    )


@posix_only
def test_a_cookie_that_is_not_a_regular_file_is_refused(livekit_home: Path) -> None:
    livekit_home.mkdir(mode=0o700)
    os.mkfifo(livekit_home / "cookie", 0o600)  # opened without blocking, then refused
    with pytest.raises(PermissionError) as caught:
        get_cookie()
    assert str(caught.value) == f"the cookie file {cookie_path()} is not a regular file"


@posix_only
@pytest.mark.parametrize("where", ["home", "nodes"])
def test_a_home_or_nodes_folder_that_others_can_write_to_is_refused(
    livekit_home: Path, where: str
) -> None:
    from livekit.nodes import registry

    folder = livekit_home if where == "home" else livekit_home / "nodes"
    folder.mkdir(mode=0o700, parents=True)
    folder.chmod(0o777)
    expected = f"{folder} is writable by other users (mode 0o777); run: chmod go-w {folder}"
    with pytest.raises(PermissionError) as caught:
        registry.lookup("anyone")
    assert str(caught.value) == expected
    if where == "home":
        with pytest.raises(PermissionError) as caught:
            get_cookie()
        assert str(caught.value) == expected


@posix_only
def test_a_home_readable_by_others_but_writable_only_by_its_owner_is_accepted(
    livekit_home: Path,
) -> None:
    livekit_home.mkdir(mode=0o755)
    livekit_home.chmod(0o755)
    assert len(get_cookie()) >= 32
