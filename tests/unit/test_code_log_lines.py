"""PURE: the session side's reading of terminal keystrokes as the lines a user entered."""

import pytest

from backendai_hub_session.lines import LineAssembler


@pytest.mark.parametrize("chunks, lines, rest", [
    (["ls -l\r"], ["ls -l"], ""),
    (["l", "s", " ", "-", "a", "\r"], ["ls -a"], ""),  # one key per websocket message
    (["echo hi\r\rpwd\n"], ["echo hi", "pwd"], ""),  # empty lines are no records
    (["ls /tmp \x7f\x7f\x7f\x7f\x7fpwd\r"], ["ls pwd"], ""),  # Backspace
    (["rm -rf /\x03echo safe\r"], ["echo safe"], ""),  # Ctrl-C abandons the line
    (["secret\x15ls\r"], ["ls"], ""),  # Ctrl-U
    (["ls\x1b[A\x1b[1;5C\x1bOP -l\r"], ["ls -l"], ""),  # arrows, Ctrl-arrow, F1 dropped
    (["half typed"], [], "half typed"),
])
def test_keystrokes_become_lines(chunks, lines, rest):
    a = LineAssembler()
    out = [line for chunk in chunks for line in a.feed(chunk)]
    assert out == lines and a.line == rest


def test_the_extension_is_inert_unless_the_spawner_turned_logging_on(monkeypatch):
    import backendai_hub_session as ext

    class Server:  # what the extension would change on a jupyter_server ServerApp
        kernel_websocket_connection_class = object
        static_custom_path = ["x"]

    monkeypatch.delenv("BACKENDAI_HUB_CODE_LOG", raising=False)
    server = Server()
    ext._link_jupyter_server_extension(server)
    ext._load_jupyter_server_extension(server)  # would need a web app if it did anything
    assert server.kernel_websocket_connection_class is object and server.static_custom_path == ["x"]
    assert not ext.enabled({"BACKENDAI_HUB_CODE_LOG": "0"}) and ext.enabled({"BACKENDAI_HUB_CODE_LOG": "1"})
