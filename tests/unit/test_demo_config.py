"""The demo's relais.toml follows its homeserver from one run to the next."""

from __future__ import annotations

from pathlib import Path

from hub.demo import follow_homeserver


def test_the_demo_config_follows_a_homeserver_on_another_port(tmp_path: Path) -> None:
    path = tmp_path / "relais.toml"
    path.write_text('[matrix]\nhomeserver = "http://127.0.0.1:8008"\nuser_id = "@relais:localhost"\n'
                    '[http]\nport = 40961\n', encoding="utf-8")
    assert not follow_homeserver(path, "http://127.0.0.1:8008")
    assert follow_homeserver(path, "http://127.0.0.1:8021")
    text = path.read_text(encoding="utf-8")
    assert 'homeserver = "http://127.0.0.1:8021"' in text and "8008" not in text
    assert "port = 40961" in text  # nothing else touched
